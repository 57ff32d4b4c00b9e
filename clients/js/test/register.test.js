// sigit-dvm/2 against the real daemon, relay and SMTP catcher: register, login without entropy,
// a password change from the login's key, sealed account methods, and no event naming the account.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { generateSecretKey } from 'nostr-tools/pure'
import { ProtocolError, discover, makeBackup, openBackup } from '../src/node.js'
import { WebSocket, startStack } from './stack.js'

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack
/** @type {import('../src/node.js').SigitDvm} */
let dvm
const EMAIL = `reg.${Date.now()}@example.org`
const PASSWORD = 'a long password of at least twenty-one characters'

before(async () => {
  stack = await startStack('8,4')
  dvm = await discover(stack.nip05, { WebSocket })
})
after(async () => {
  dvm?.close()
  await stack?.stop()
})

/** Every event on the relay authored by, or tagging, `pubkey`. */
async function eventsNaming(/** @type {string} */ pubkey) {
  const ws = new WebSocket(stack.relay)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  /** @type {unknown[]} */
  const found = []
  await new Promise((resolve) => {
    let open = 2
    ws.on('message', (/** @type {Buffer} */ data) => {
      const msg = JSON.parse(data.toString())
      if (msg[0] === 'EVENT') found.push(msg[2])
      if (msg[0] === 'EOSE' && --open === 0) resolve(undefined)
    })
    ws.send(JSON.stringify(['REQ', 'a', { authors: [pubkey] }]))
    ws.send(JSON.stringify(['REQ', 'p', { '#p': [pubkey] }]))
  })
  ws.close()
  return found
}

test('the DVM announces sigit-dvm/2 or later, and the client seals account methods by default', () => {
  assert.ok(dvm.version >= 2, dvm.info.protocols.join(' '))
  assert.equal(dvm.options.sealed, true)
  // register and activate are sealed by the key they name once the DVM speaks sigit-dvm/3.
  assert.equal(dvm.options.proveKeys, dvm.version >= 3)
})

test('register: one event, the code activates, login returns the backup with no entropy', async () => {
  const signup = dvm.session()
  const before = await stack.count(EMAIL)
  const { secretKey, pubkey } = await signup.signUp(EMAIL, PASSWORD, { logN: 12 })
  const result = await signup.verifyCode(await stack.codeFor(EMAIL, before))
  assert.deepEqual(result, {})
  // The key that registered may act for the account for a while: no account key needed.
  const status = await signup.account('status')
  assert.equal(status?.email, EMAIL)
  // Registering the address again is email_taken: go to login.
  const other = generateSecretKey()
  const again = dvm.session().register(other, EMAIL, await makeBackup(other, PASSWORD, '', { logN: 12 }))
  await assert.rejects(again, (err) => err instanceof ProtocolError && err.code === 'email_taken')

  // Login on a new device.
  const login = dvm.session()
  const sent = await stack.count(EMAIL)
  await login.requestLogin(EMAIL)
  const found = await login.verifyCode(await stack.codeFor(EMAIL, sent))
  assert.equal(found.entropy, undefined)
  assert.equal(found.pubkey, pubkey)
  assert.ok(found.backup)
  assert.deepEqual(await openBackup(found.backup, PASSWORD, found.entropy, { pubkey }), secretKey)

  // Password change from the login's key: the key re-encrypted under the new password.
  const changed = await makeBackup(secretKey, `${PASSWORD} changed`, '', { logN: 12 })
  await login.account('update_backup', { backup: changed })

  // Sealed account methods from fresh keys: status, and an email change confirmed under seal.
  assert.equal((await dvm.status(secretKey)).email, EMAIL)
  const moved = `moved.${EMAIL}`
  await dvm.changeEmail(secretKey, moved)
  const code = await stack.codeFor(moved, 0)
  assert.deepEqual(await dvm.confirmEmail(secretKey, code), { email: moved })

  // Nothing on the relay is authored by, or tags, the account's key.
  assert.deepEqual(await eventsNaming(pubkey), [])
  // The old way (sealed: false) is still accepted, and is what puts the npub on the relay.
  assert.equal((await dvm.status(secretKey, { sealed: false })).email, moved)
  assert.equal((await eventsNaming(pubkey)).length, 2) // the request it signs, the reply tagging it
})

// sigit-dvm/3 against the real daemon: keys proven by seals (key_not_proven otherwise), the
// announcement, revoke_sessions, lang. Each test is skipped, saying so, while the daemon in this
// checkout does not announce sigit-dvm/3 (its change lands separately: docs/protocol.md).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { generateSecretKey } from 'nostr-tools/pure'
import { ProtocolError, SigitDvm, discover, fetchAnnouncement } from '../src/node.js'
import { WebSocket, startStack } from './stack.js'

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack
/** @type {SigitDvm} */
let dvm
const PASSWORD = 'correct horse battery staple'
const stamp = Date.now()

before(async () => {
  stack = await startStack('8,4')
  dvm = await discover(stack.nip05, { WebSocket })
})
after(async () => {
  dvm?.close()
  await stack?.stop()
})

/** @param {import('node:test').TestContext} t */
function needsV3(t) {
  if (dvm.version >= 3) return false
  t.skip(`the daemon announces ${dvm.info.protocols.join(', ')}, not sigit-dvm/3 yet`)
  return true
}

/** @param {Promise<unknown>} promise @param {string} code */
async function refused(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ProtocolError, String(err))
    assert.equal(err.code, code, err.message)
    return true
  })
}

test('the announcement names sigit-dvm/3 and a minimum for every method, revoke_sessions included', async (t) => {
  if (needsV3(t)) return
  const event = await fetchAnnouncement(dvm.info.pubkey, dvm.info.relays, { WebSocket })
  const content = JSON.parse(String(event?.content))
  assert.deepEqual(content.protocols, ['sigit-dvm/3'])
  assert.equal(content.protocol, 'sigit-dvm/3')
  for (const method of ['register', 'revoke_sessions', 'request_account', 'activate']) assert.ok(Number.isInteger(content.pow_bits[method]), method)
})

test('register and activate unsealed are key_not_proven; sealed (the default), they work', async (t) => {
  if (needsV3(t)) return
  const unproven = new SigitDvm({ ...dvm.info, WebSocket, proveKeys: false })
  const email = `proof.${stamp}@example.org`
  await refused(unproven.session().signUp(email, PASSWORD, { logN: 10 }), 'key_not_proven')

  const signup = unproven.session()
  const sent = await stack.count(email)
  await signup.requestAccount(email)
  await signup.verifyCode(await stack.codeFor(email, sent))
  const key = generateSecretKey()
  await refused(signup.activate(key, 'QUJD'), 'key_not_proven')
  unproven.options.proveKeys = true // the default against sigit-dvm/3
  await signup.activate(key, 'QUJD')
  assert.equal((await dvm.status(key)).email, email)
  unproven.close()
})

test('revokeSessions: a login session elsewhere loses its right to act for the account', async (t) => {
  if (needsV3(t)) return
  const email = `revoke.${stamp}@example.org`
  const signup = dvm.session()
  let sent = await stack.count(email)
  const { secretKey } = await signup.signUp(email, PASSWORD, { logN: 10 })
  await signup.verifyCode(await stack.codeFor(email, sent))
  const other = dvm.session()
  sent = await stack.count(email)
  await other.requestLogin(email)
  await other.verifyCode(await stack.codeFor(email, sent))
  assert.equal((await other.account('status'))?.email, email)
  await dvm.revokeSessions(secretKey)
  await refused(other.account('status'), 'unknown_account')
  assert.equal((await dvm.status(secretKey)).email, email)
})

test('lang: a request in another language is taken (its mail may use that language\'s templates)', async (t) => {
  if (needsV3(t)) return
  const email = `lang.${stamp}@example.org`
  const sent = await stack.count(email)
  await dvm.session().requestAccount(email, { lang: 'de' })
  assert.ok((await stack.codeFor(email, sent)).length >= 6)
  await dvm.session().requestAccount(`lang2.${stamp}@example.org`, { lang: 'zz-Unknown' }) // unknown: the default
})

// Every method against the real daemon, relay and SMTP catcher (python -m dvm.demo.stack, PoW 8/4).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { npubEncode } from 'nostr-tools/nip19'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { DiscoveryError, ProtocolError, SigitDvm, discover, openBackup } from '../src/node.js'
import { WebSocket, startStack } from './stack.js'

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack
/** @type {import('../src/node.js').SigitDvm} */
let dvm
const EMAIL = `ana.${Date.now()}@example.org`
const NEW_EMAIL = `ana.new.${Date.now()}@example.org`
const PASSWORD = 'correct horse battery staple'
const account = { key: new Uint8Array(), entropy: '' }

before(async () => {
  stack = await startStack('8,4')
  dvm = await discover(stack.nip05, { WebSocket })
})
after(async () => {
  dvm?.close()
  await stack?.stop()
})

/** Assert that `promise` fails with the DVM's `code`; return the error. */
async function refused(/** @type {Promise<unknown>} */ promise, /** @type {string} */ code) {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof ProtocolError, String(err))
    assert.equal(err.code, code, err.message)
    assert.ok(err.message.length > 0)
    return err
  }
  assert.fail(`expected ${code}`)
}

test('discovery by NIP-05 name reads the announcement: kinds, PoW minimums, protocol', () => {
  assert.equal(dvm.info.pubkey, stack.pubkey)
  assert.deepEqual(dvm.info.relays, [stack.relay])
  assert.ok(dvm.version >= 2, dvm.info.protocols.join(' '))
  assert.equal(dvm.info.requestKind, 5780)
  assert.equal(dvm.info.replyKind, 6780)
  assert.equal(dvm.info.powBits.request_account, 8)
  assert.equal(dvm.info.powBits.delete_account, 4)
  assert.ok(dvm.info.encryption.includes('nip44'))
})

test('discovery fails fast and typed for a key with no announcement or a name nobody has', async () => {
  const started = Date.now()
  const stranger = npubEncode(getPublicKey(generateSecretKey()))
  await assert.rejects(discover(stranger, { WebSocket, relays: [stack.relay] }), DiscoveryError)
  await assert.rejects(discover(stack.nip05.replace('dvm@', 'nobody@'), { WebSocket }), (err) => {
    assert.ok(err instanceof DiscoveryError)
    assert.equal(err.code, 'discovery_failed')
    return true
  })
  assert.ok(Date.now() - started < 3000, 'the relay\'s EOSE ends the wait, not the timeout')
})

test('signup: request_account, a wrong then the right code, activate, status', async () => {
  const session = dvm.session()
  const before = await stack.count(EMAIL)
  const fractions = []
  await session.requestAccount(EMAIL, { onProgress: (p) => fractions.push(p.fraction) })
  const code = await stack.codeFor(EMAIL, before)
  const wrong = await refused(session.verifyCode(code === '000000' ? '111111' : '000000'), 'code_invalid')
  assert.equal(wrong.attemptsLeft, 4)
  const { entropy } = await session.verifyCode(code)
  assert.match(entropy, /^[0-9a-f]{64}$/)
  const created = await session.createAccount(PASSWORD, entropy, { logN: 12 })
  account.key = created.secretKey
  account.entropy = entropy
  const status = await dvm.status(account.key)
  assert.equal(status.email, EMAIL)
  assert.equal(status.activated, true)
  assert.equal(status.pending_email, null)
})

test('the same address again answers email_taken; an unknown one unknown_email', async () => {
  await refused(dvm.session().requestAccount(EMAIL), 'email_taken')
  await refused(dvm.session().requestLogin(`nobody.${Date.now()}@example.org`), 'unknown_email')
  await refused(dvm.session().requestAccount('not an address'), 'invalid_email')
})

test('too little PoW is refused with the bits it needs; a stale minimum is raised and mined again', async () => {
  const err = await refused(dvm.session().requestAccount(EMAIL, { powBits: 5 }), 'pow_too_low')
  assert.equal(err.requiredBits, 8)
  const stale = new SigitDvm({ ...dvm.info, WebSocket, powBits: { ...dvm.info.powBits, request_login: 5 } })
  await refused(stale.session().requestLogin(`nobody.${Date.now()}@example.org`), 'unknown_email')
  // sigit-dvm/2 says to keep the figure; /3 makes it a price for that request only.
  assert.equal(stale.info.powBits.request_login, stale.version < 3 ? 8 : 5)
  // Above the client's ceiling, the call stops with a clear pow_too_low (details.ceiling).
  const capped = new SigitDvm({ ...dvm.info, WebSocket, maxPowBits: 6, powBits: { ...dvm.info.powBits, request_login: 5 } })
  const err2 = await refused(capped.session().requestLogin(`nobody.${Date.now()}@example.org`), 'pow_too_low')
  assert.deepEqual([err2.requiredBits, err2.details.ceiling], [8, 6])
  assert.match(err2.userMessage, /busy/)
  stale.close()
  capped.close()
})

test('a key that is no account is unknown_account; NIP-04 works when asked for', async () => {
  await refused(dvm.status(generateSecretKey()), 'unknown_account')
  await refused(dvm.status(generateSecretKey(), { scheme: 'nip04' }), 'unknown_account')
  const status = await dvm.status(account.key, { scheme: 'nip04' })
  assert.equal(status.email, EMAIL)
})

test('login on a new device returns the backup, which opens to the account key', async () => {
  const session = dvm.session()
  const before = await stack.count(EMAIL)
  await session.requestLogin(EMAIL)
  await refused(session.resendCode(), 'rate_limited').then((err) => assert.ok(err.retryAfterS > 0))
  const result = await session.verifyCode(await stack.codeFor(EMAIL, before))
  assert.equal(result.pubkey, getPublicKey(account.key))
  assert.equal(result.entropy, account.entropy)
  const key = await openBackup(result.backup, PASSWORD, result.entropy, { pubkey: result.pubkey })
  assert.deepEqual(key, account.key)
  session.close()
})

test('the same signed event sent again gets the same answer (republishing is safe)', async () => {
  const event = await dvm.buildRequest('status', undefined, account.key)
  const first = await dvm.send(event, 'status', account.key)
  const again = await dvm.send(event, 'status', account.key)
  assert.deepEqual(again, first)
})

test('discovery by npub with relays given, one of them down, still gets answers', async () => {
  const other = await discover(npubEncode(stack.pubkey), {
    WebSocket,
    relays: ['ws://127.0.0.1:9', stack.relay],
    connectTimeoutMs: 1000,
  })
  const status = await other.status(account.key)
  assert.equal(status.email, EMAIL)
  other.close()
})

test('notifications, email change and confirmation', async () => {
  assert.deepEqual(await dvm.setNotifications(account.key, { loginNotice: false }), {
    notifications: { login_notice: false },
  })
  const before = await stack.count(NEW_EMAIL)
  await dvm.changeEmail(account.key, NEW_EMAIL)
  const pending = await dvm.status(account.key)
  assert.equal(pending.pending_email, NEW_EMAIL)
  assert.ok(pending.grace_s > 0)
  assert.deepEqual(await dvm.confirmEmail(account.key, await stack.codeFor(NEW_EMAIL, before)), { email: NEW_EMAIL })
  assert.equal((await dvm.status(account.key)).email, NEW_EMAIL)
})

test('password change: the new backup opens with the new password only', async () => {
  await dvm.changePassword(account.key, 'a new password', account.entropy, { logN: 12 })
  const session = dvm.session()
  const before = await stack.count(NEW_EMAIL)
  await session.requestLogin(NEW_EMAIL)
  const result = await session.verifyCode(await stack.codeFor(NEW_EMAIL, before))
  assert.deepEqual(await openBackup(result.backup, 'a new password', result.entropy), account.key)
  await assert.rejects(openBackup(result.backup, PASSWORD, result.entropy), { code: 'wrong_password' })
})

test('deletion: a code to the address, then the account is gone', async () => {
  const before = await stack.count(NEW_EMAIL)
  await dvm.requestDeletion(account.key)
  const code = await stack.codeFor(NEW_EMAIL, before)
  await refused(dvm.deleteAccount(account.key, code === '000000' ? '111111' : '000000'), 'code_invalid')
  await dvm.deleteAccount(account.key, code)
  await refused(dvm.status(account.key), 'unknown_account')
  await refused(dvm.session().requestLogin(NEW_EMAIL), 'unknown_email')
})

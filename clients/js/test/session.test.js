// Flows that survive a reload and the emailed link (save / resume), a wrong password that does not
// spend the code, register with no discovery, account methods through a signer, the site's relay
// pool, and discovery's timeouts and AbortSignal: against the real daemon, relay and mail catcher.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, test } from 'node:test'
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import {
  BackupError,
  CancelledError,
  DiscoveryError,
  FLOW_STORAGE_KEY,
  SignerError,
  SigitDvm,
  discover,
} from '../src/node.js'
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

/** localStorage's interface over a Map; `async: true` answers with promises, as an IndexedDB adapter would. */
function memoryStorage(async = false) {
  const map = new Map()
  /** @param {any} v */
  const answer = (v) => (async ? Promise.resolve(v) : v)
  return {
    map,
    getItem: (/** @type {string} */ k) => answer(map.has(k) ? map.get(k) : null),
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => answer(void map.set(k, v)),
    removeItem: (/** @type {string} */ k) => answer(void map.delete(k)),
  }
}

test('a signup saved at the code step resumes in a new page (the emailed link), and the saved flow then goes', async () => {
  const email = `resume.${stamp}@example.org`
  const storage = memoryStorage(true)
  const first = new SigitDvm({ ...dvm.info, WebSocket, storage })
  const before = await stack.count(email)
  const started = first.session()
  await started.requestAccount(email)
  const saved = JSON.parse(storage.map.get(FLOW_STORAGE_KEY))
  assert.deepEqual([saved.v, saved.flow, saved.step, saved.email, saved.dvm], [1, 'signup', 'code', email, dvm.info.pubkey])
  first.close()

  // A new page (a reload, or the link opened in a new tab): a new client, the same storage.
  const page = new SigitDvm({ ...dvm.info, WebSocket, storage })
  const session = await page.resume()
  assert.ok(session)
  assert.equal(session.pubkey, started.pubkey)
  assert.deepEqual([session.flow, session.step, session.email, session.resumed], ['signup', 'code', email, true])
  const { entropy } = await session.verifyCode(await stack.codeFor(email, before))
  assert.match(String(entropy), /^[0-9a-f]{64}$/)
  assert.equal(storage.map.size, 0, 'the code is spent: nothing left to resume')
  const { secretKey } = await session.createAccount(PASSWORD, undefined, { logN: 10 })
  assert.equal((await page.status(secretKey)).email, email)
  assert.equal(await page.resume(), null)
  page.close()
})

test('resume ignores another DVM\'s flow and drops one too old or unreadable', async () => {
  const storage = memoryStorage()
  const now = Math.floor(Date.now() / 1000)
  const flow = { v: 1, dvm: dvm.info.pubkey, key: 'ab'.repeat(32), flow: 'login', step: 'code', email: 'a@example.org', savedAt: now }
  storage.setItem(FLOW_STORAGE_KEY, JSON.stringify({ ...flow, dvm: 'cd'.repeat(32) }))
  assert.equal(await dvm.resume({ storage }), null)
  assert.equal(storage.map.size, 1)
  storage.setItem(FLOW_STORAGE_KEY, JSON.stringify({ ...flow, savedAt: now - 7200 }))
  assert.equal(await dvm.resume({ storage }), null)
  assert.equal(storage.map.size, 0)
  storage.setItem(FLOW_STORAGE_KEY, '{not json')
  assert.equal(await dvm.resume({ storage }), null)
  assert.equal(storage.map.size, 0)
  storage.setItem(FLOW_STORAGE_KEY, JSON.stringify(flow))
  assert.equal((await dvm.resume({ storage }))?.email, 'a@example.org')
})

test('a refused request drops the saved flow; a lost one keeps it for the code email that may come', async () => {
  const storage = memoryStorage()
  await assert.rejects(dvm.session({ storage }).requestLogin(`nobody.${stamp}@example.org`), { code: 'unknown_email' })
  assert.equal(storage.map.size, 0)
  const silent = new SigitDvm({ ...dvm.info, WebSocket, storage, relays: ['ws://127.0.0.1:9'], connectTimeoutMs: 300 })
  await assert.rejects(silent.session().requestLogin(`lost.${stamp}@example.org`), { code: 'relay_refused' })
  assert.equal(JSON.parse(storage.map.get(FLOW_STORAGE_KEY)).email, `lost.${stamp}@example.org`)
  // close() ends the flow: the saved copy goes, the key is zeroed.
  const resumed = await silent.resume()
  assert.ok(resumed)
  const key = resumed.secretKey
  await resumed.close()
  assert.equal(storage.map.size, 0)
  assert.ok(key.every((b) => b === 0))
  assert.throws(() => resumed.secretKey, TypeError)
  silent.close()
})

test('a wrong password at login keeps the verify_code result: the right one opens it, no new code', async () => {
  const email = `unlock.${stamp}@example.org`
  const signup = dvm.session()
  let sent = await stack.count(email)
  const made = await signup.signUp(email, PASSWORD, { logN: 10 })
  await signup.verifyCode(await stack.codeFor(email, sent))

  const login = dvm.session()
  sent = await stack.count(email)
  await login.requestLogin(email)
  await login.verifyCode(await stack.codeFor(email, sent))
  await assert.rejects(login.unlock('not the password'), (err) => err instanceof BackupError && err.code === 'wrong_password')
  assert.deepEqual(await login.unlock(PASSWORD), made.secretKey)
  assert.equal(await stack.count(email), sent + 1, 'no code was asked for again')
  // The code is spent: verify_code again is no_session (the README says to keep the session).
  const code = await stack.codeFor(email, sent)
  await assert.rejects(login.verifyCode(code), { code: 'no_session' })
})

test('register works with no discovery at all (the built-in minimums cover every method)', async () => {
  const plain = new SigitDvm({ pubkey: dvm.info.pubkey, relays: dvm.info.relays, WebSocket, protocols: dvm.info.protocols, timeoutMs: 20_000 })
  assert.equal(plain.info.powBits.register, 16)
  const email = `plain.${stamp}@example.org`
  const session = plain.session()
  const sent = await stack.count(email)
  await session.signUp(email, PASSWORD, { logN: 10 })
  assert.deepEqual(await session.verifyCode(await stack.codeFor(email, sent)), {})
  plain.close()
})

test('account methods through a NIP-07-shaped signer; a signer that refuses or cheats is SignerError', async () => {
  const email = `signer.${stamp}@example.org`
  const key = generateSecretKey()
  const signer = {
    getPublicKey: async () => getPublicKey(key),
    signEvent: async (/** @type {any} */ template) => JSON.parse(JSON.stringify(finalizeEvent(template, key))),
  }
  const session = dvm.session()
  const sent = await stack.count(email)
  await session.register(signer, email, 'QUJD', {})
  await session.verifyCode(await stack.codeFor(email, sent))
  assert.equal((await dvm.status(signer)).email, email)
  await assert.rejects(dvm.status({ getPublicKey: async () => getPublicKey(key), signEvent: async () => { throw new Error('user said no') } }), (err) => err instanceof SignerError && err.code === 'signer_failed')
  const other = generateSecretKey()
  const liar = { getPublicKey: async () => getPublicKey(key), signEvent: async (/** @type {any} */ t) => finalizeEvent(t, other) }
  await assert.rejects(dvm.status(liar), SignerError)
  await assert.rejects(dvm.status(signer, { sealed: false }), TypeError)
  await assert.rejects(dvm.changePassword(/** @type {any} */ (signer), 'new password', ''), TypeError)
})

test("the site's own relay pool (nostr-tools SimplePool) carries discovery, requests and replies", async () => {
  useWebSocketImplementation(WebSocket)
  const pool = new SimplePool()
  try {
    const viaPool = await discover(stack.nip05, { pool })
    assert.equal(viaPool.info.pubkey, dvm.info.pubkey)
    await assert.rejects(viaPool.session().requestLogin(`nobody.pool.${stamp}@example.org`), { code: 'unknown_email' })
    viaPool.close() // leaves the site's pool open
    assert.ok([...pool.listConnectionStatus().values()].some(Boolean))
  } finally {
    pool.destroy()
  }
})

test('discovery: the NIP-05 request times out, an AbortSignal cancels it, and relays that never answer end at their timeout', async () => {
  const silent = createServer(() => {}) // accepts, never answers
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', () => resolve(undefined)))
  const port = /** @type {import('node:net').AddressInfo} */ (silent.address()).port
  try {
    let started = Date.now()
    await assert.rejects(discover(`dvm@127.0.0.1:${port}`, { fetchTimeoutMs: 300 }), (err) => err instanceof DiscoveryError && err.details.timedOut === true)
    assert.ok(Date.now() - started < 2000)
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    started = Date.now()
    await assert.rejects(discover(`dvm@127.0.0.1:${port}`, { signal: controller.signal }), CancelledError)
    assert.ok(Date.now() - started < 2000)
    const relayController = new AbortController()
    setTimeout(() => relayController.abort(), 200)
    await assert.rejects(discover(getPublicKey(generateSecretKey()), { WebSocket, relays: [`ws://127.0.0.1:${port}`], signal: relayController.signal }), CancelledError)
  } finally {
    silent.closeAllConnections()
    silent.close()
  }
})

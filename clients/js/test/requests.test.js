// What the client sends, read by a scripted DVM (a ws relay in this process that holds the DVM's
// key): sigit-dvm/3 seals on register and activate, `lang`, codes as typed, and `pow_too_low`
// prices obeyed per request up to the ceiling; version 2 DVMs get what version 2 allows.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import * as nip44 from 'nostr-tools/nip44'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { WebSocketServer } from 'ws'
import { DiscoveryError, ProtocolError, SigitDvm, commonVersion, discover } from '../src/node.js'
import { leadingZeroBits } from '../src/pow-core.js'
import { WebSocket } from './stack.js'

const dvmKey = generateSecretKey()
const DVM = getPublicKey(dvmKey)
/** @type {WebSocketServer[]} */
const servers = []
after(() => servers.forEach((s) => s.close()))

/** @param {string} id */
function bitsOf(id) {
  const words = new Uint32Array(8)
  for (let i = 0; i < 8; i++) words[i] = parseInt(id.slice(8 * i, 8 * i + 8), 16)
  return leadingZeroBits(words)
}

/**
 * A relay that is also the DVM: each request is decrypted and handed to `decide`, whose
 * `{result}` or `{error}` goes back encrypted, as the daemon would; `announcement` is what a
 * query for kind 31990 gets.
 * @param {(request: any, event: any, seen: any[]) => any} decide
 * @param {any} [announcement]
 */
async function scriptedDvm(decide, announcement) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  servers.push(server)
  await new Promise((r) => server.once('listening', r))
  /** @type {any[]} */
  const seen = []
  server.on('connection', (ws) => {
    /** @type {Map<string, string>} */
    const subs = new Map()
    ws.on('message', (raw) => {
      const [type, a, b] = JSON.parse(String(raw))
      if (type === 'REQ') {
        if (b.kinds?.includes(31990) && announcement) ws.send(JSON.stringify(['EVENT', a, announcement]))
        if (b['#e']) subs.set(a, b['#e'][0])
        ws.send(JSON.stringify(['EOSE', a]))
      } else if (type === 'EVENT') {
        ws.send(JSON.stringify(['OK', a.id, true, '']))
        const key = nip44.getConversationKey(dvmKey, a.pubkey)
        const request = JSON.parse(nip44.decrypt(a.content, key))
        const nonce = a.tags.find((/** @type {string[]} */ t) => t[0] === 'nonce')
        seen.push({ event: a, request, committed: Number(nonce?.[2] ?? 0), bits: bitsOf(a.id) })
        const body = decide(request, a, seen)
        const reply = finalizeEvent(
          { kind: 6780, created_at: Math.floor(Date.now() / 1000), tags: [['e', a.id], ['p', a.pubkey]], content: nip44.encrypt(JSON.stringify(body), key) },
          dvmKey,
        )
        for (const [sub, id] of subs) if (id === a.id) ws.send(JSON.stringify(['EVENT', sub, reply]))
      }
    })
  })
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  return { url: `ws://127.0.0.1:${port}`, seen }
}

const v3 = ['sigit-dvm/3']
const low = { request_account: 2, request_login: 2, register: 2, verify_code: 1, activate: 1, status: 1 }

test('sigit-dvm/3: register and activate are sealed by the key they name, from the session key', async () => {
  const relay = await scriptedDvm(() => ({ result: {} }))
  const dvm = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: v3, powBits: low })
  assert.deepEqual([dvm.version, dvm.options.proveKeys, dvm.options.sealed], [3, true, true])
  const session = dvm.session()
  const { pubkey } = await session.signUp('ana@example.org', 'pw', { logN: 8 })
  await session.verifyCode('123 456')
  const account = generateSecretKey()
  await session.activate(account, 'QUJD')
  const [register, verify, activate] = relay.seen
  for (const [sent, method, key] of [[register, 'register', pubkey], [activate, 'activate', getPublicKey(account)]]) {
    assert.equal(sent.event.pubkey, session.pubkey, 'carried by the session key')
    const seal = sent.request.seal
    assert.ok(seal && verifyEvent(seal), method)
    assert.equal(seal.kind, 13)
    assert.equal(seal.pubkey, key)
    assert.deepEqual(seal.tags, [['p', DVM], ['client', session.pubkey]])
    const inner = JSON.parse(seal.content)
    assert.equal(inner.method, method)
    assert.equal(inner.params.pubkey, key)
    assert.deepEqual(Object.keys(sent.request), ['seal'])
  }
  assert.deepEqual(verify.request, { method: 'verify_code', params: { code: '123456' } })
  // A bare public key can only go unsealed (what a version 2 DVM takes).
  await dvm.session().register(getPublicKey(account), 'bo@example.org', 'QUJD')
  assert.equal(relay.seen.at(-1).request.params.pubkey, getPublicKey(account))
  dvm.close()
})

test('version 2 DVMs get register and activate unsealed, and no lang', async () => {
  const relay = await scriptedDvm(() => ({ result: {} }))
  const dvm = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: ['sigit-dvm/1', 'sigit-dvm/2'], powBits: low, lang: 'de' })
  assert.deepEqual([dvm.version, dvm.options.proveKeys], [2, false])
  const session = dvm.session()
  const { pubkey } = await session.signUp('ana@example.org', 'pw', { logN: 8 })
  assert.deepEqual(relay.seen[0].request.params.pubkey, pubkey)
  assert.equal(relay.seen[0].request.lang, undefined)
  dvm.close()
})

test('lang (BCP 47) goes as the request\'s top-level member, inside the seal when sealed; a malformed one is refused here', async () => {
  const relay = await scriptedDvm(() => ({ result: {} }))
  const dvm = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: v3, powBits: low, lang: 'pt-BR' })
  await dvm.session().requestAccount('ana@example.org')
  assert.deepEqual(relay.seen[0].request, { method: 'request_account', params: { email: 'ana@example.org' }, lang: 'pt-BR' })
  await dvm.status(generateSecretKey(), { lang: 'de' })
  assert.equal(JSON.parse(relay.seen[1].request.seal.content).lang, 'de')
  assert.throws(() => new SigitDvm({ pubkey: DVM, relays: [relay.url], lang: 'de_DE' }), TypeError)
  await assert.rejects(dvm.session().requestAccount('ana@example.org', { lang: 'x'.repeat(36) }), TypeError)
  dvm.close()
})

test('pow_too_low prices: mined again per request at required_bits, not kept; a rising price is followed up to the ceiling', async () => {
  const prices = [5, 7]
  const relay = await scriptedDvm((request, event, seen) => {
    const want = prices[seen.filter((s) => s.request.method === request.method).length - 1]
    const got = seen.at(-1)
    if (want !== undefined && got.committed < want) return { error: { code: 'pow_too_low', message: 'more work', required_bits: want } }
    return { result: {} }
  })
  const dvm = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: v3, powBits: low })
  await dvm.session().requestAccount('ana@example.org')
  assert.deepEqual(relay.seen.map((s) => s.committed), [2, 5, 7])
  assert.ok(relay.seen.every((s) => s.bits >= s.committed))
  assert.equal(new Set(relay.seen.map((s) => s.event.id)).size, 3, 'a new event each time')
  assert.equal(dvm.info.powBits.request_account, 2, 'a price, not the new minimum')

  // Over the ceiling: a clear pow_too_low with the ceiling, after no mining at all.
  prices.splice(0, 2, 30)
  const capped = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: v3, powBits: low, maxPowBits: 20 })
  const before = relay.seen.length
  await assert.rejects(capped.session().requestLogin('ana@example.org'), (err) => {
    assert.ok(err instanceof ProtocolError && err.code === 'pow_too_low')
    assert.deepEqual([err.requiredBits, err.details.ceiling], [30, 20])
    return true
  })
  assert.equal(relay.seen.length, before + 1)
  dvm.close()
  capped.close()
})

test('commonVersion picks the newest version both speak', () => {
  assert.equal(commonVersion(['sigit-dvm/1', 'sigit-dvm/2']), 2)
  assert.equal(commonVersion(['sigit-dvm/3']), 3)
  assert.equal(commonVersion(['sigit-dvm/9']), 0)
  assert.throws(() => new SigitDvm({ pubkey: DVM, relays: ['ws://127.0.0.1:9'], protocols: ['sigit-dvm/9'] }), TypeError)
})

test('a storage that refuses to keep the flow never stops it (only the link is lost), nor does one that cannot be read', async () => {
  const relay = await scriptedDvm(() => ({ result: {} }))
  const full = {
    getItem: () => null,
    setItem: () => {
      throw new DOMException('full', 'QuotaExceededError')
    },
    removeItem: () => {},
  }
  const dvm = new SigitDvm({ pubkey: DVM, relays: [relay.url], WebSocket, protocols: v3, powBits: low, storage: full })
  const session = dvm.session()
  await session.requestAccount('ana@example.org')
  assert.equal(session.saved, false)
  await session.verifyCode('123456')
  const forbidden = { getItem: () => { throw new DOMException('no', 'SecurityError') }, setItem: () => {}, removeItem: () => {} }
  assert.equal(await dvm.resume({ storage: forbidden }), null)
  dvm.close()
})

test('discovery takes the newest version both speak, and refuses a DVM that announces none the client speaks', async () => {
  /** @param {string[]} protocols */
  const announce = (protocols) =>
    finalizeEvent(
      {
        kind: 31990,
        created_at: Math.floor(Date.now() / 1000),
        tags: [['d', 'sigit-dvm'], ['k', '5780']],
        content: JSON.stringify({ protocol: protocols[0], protocols, request_kind: 5780, pow_bits: { register: 3 } }),
      },
      dvmKey,
    )
  const v3only = await scriptedDvm(() => ({ result: {} }), announce(['sigit-dvm/3']))
  const found = await discover(DVM, { WebSocket, relays: [v3only.url] })
  assert.deepEqual([found.version, found.options.proveKeys, found.info.powBits.register, found.info.powBits.revoke_sessions], [3, true, 3, 12])
  found.close()
  const future = await scriptedDvm(() => ({ result: {} }), announce(['sigit-dvm/9']))
  await assert.rejects(discover(DVM, { WebSocket, relays: [future.url] }), DiscoveryError)
})

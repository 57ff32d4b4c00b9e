// The request machinery against scripted relays (ws servers in this process): republishing the same
// event, the timeout, NIP-42 AUTH on `auth-required:`, a relay that refuses everything.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool'
import { generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { WebSocketServer } from 'ws'
import { CancelledError, RelayError, SigitDvm, TimeoutError } from '../src/node.js'
import { WebSocket } from './stack.js'

const servers = []
after(() => servers.forEach((s) => s.close()))

/**
 * A relay that records what it gets and answers EVENTs through `answer`.
 * @param {(event: any, ws: any, state: any) => void} answer
 */
async function fakeRelay(answer) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  servers.push(server)
  await new Promise((r) => server.once('listening', r))
  const state = { events: [], auths: [], reqs: [] }
  server.on('connection', (ws) => {
    ws.on('message', (raw) => {
      const [type, a, ...rest] = JSON.parse(String(raw))
      if (type === 'EVENT') {
        state.events.push(a)
        answer(a, ws, state)
      } else if (type === 'AUTH') {
        state.auths.push(a)
        ws.send(JSON.stringify(['OK', a.id, true, '']))
      } else if (type === 'REQ') {
        state.reqs.push(rest)
        ws.send(JSON.stringify(['EOSE', a]))
      }
    })
  })
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  return { url: `ws://127.0.0.1:${port}`, state }
}

const dvmKey = generateSecretKey()
const client = (/** @type {string[]} */ relays, opts = {}) =>
  new SigitDvm({ pubkey: getPublicKey(dvmKey), relays, WebSocket, powBits: { request_account: 4 }, ...opts })

test('with no reply, the same signed event is republished until the timeout', async () => {
  const relay = await fakeRelay((event, ws) => ws.send(JSON.stringify(['OK', event.id, true, ''])))
  const dvm = client([relay.url], { timeoutMs: 1000, republishMs: 200 })
  await assert.rejects(dvm.session().requestAccount('a@example.org'), (err) => {
    assert.ok(err instanceof TimeoutError)
    assert.equal(err.code, 'timeout')
    return true
  })
  assert.ok(relay.state.events.length >= 3, `${relay.state.events.length} publications`)
  assert.equal(new Set(relay.state.events.map((e) => JSON.stringify(e))).size, 1)
  assert.deepEqual(relay.state.reqs[0][0]['#e'], [relay.state.events[0].id])
  dvm.close()
})

test('a relay asking for auth gets a NIP-42 event signed by the requesting key, then the request', async () => {
  const relay = await fakeRelay((event, ws, state) => {
    if (state.auths.length === 0) {
      ws.send(JSON.stringify(['AUTH', 'challenge-1']))
      ws.send(JSON.stringify(['OK', event.id, false, 'auth-required: who are you']))
    } else ws.send(JSON.stringify(['OK', event.id, true, '']))
  })
  const dvm = client([relay.url], { timeoutMs: 600, republishMs: 5000 })
  const session = dvm.session()
  await assert.rejects(session.requestAccount('a@example.org'), TimeoutError)
  assert.equal(relay.state.auths.length, 1)
  const auth = relay.state.auths[0]
  assert.ok(verifyEvent(auth))
  assert.equal(auth.kind, 22242)
  assert.equal(auth.pubkey, session.pubkey)
  assert.deepEqual(auth.tags, [['relay', relay.url], ['challenge', 'challenge-1']])
  assert.equal(relay.state.events.length, 2)
  dvm.close()
})

test('when every relay refuses or is down, RelayError says what each one answered', async () => {
  const relay = await fakeRelay((event, ws) => ws.send(JSON.stringify(['OK', event.id, false, 'pow: difficulty 30 needed'])))
  const dvm = client([relay.url, 'ws://127.0.0.1:9'], { timeoutMs: 5000, connectTimeoutMs: 1000 })
  await assert.rejects(dvm.session().requestAccount('a@example.org'), (err) => {
    assert.ok(err instanceof RelayError)
    assert.equal(err.code, 'relay_refused')
    const answers = /** @type {any[]} */ (err.details.relays)
    assert.ok(answers.some((r) => r.url === relay.url && r.message.startsWith('pow:')))
    assert.ok(answers.some((r) => r.url === 'ws://127.0.0.1:9' && !r.ok))
    return true
  })
  dvm.close()
})

test('an AbortSignal stops the wait for a reply', async () => {
  const relay = await fakeRelay((event, ws) => ws.send(JSON.stringify(['OK', event.id, true, ''])))
  const dvm = client([relay.url], { timeoutMs: 10_000 })
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 300)
  await assert.rejects(dvm.session().requestAccount('a@example.org', { signal: controller.signal }), CancelledError)
  dvm.close()
})

test("through the site's SimplePool: the request is published, AUTH answered with the requesting key, republished", async () => {
  useWebSocketImplementation(WebSocket)
  const relay = await fakeRelay((event, ws, state) => {
    if (state.auths.length === 0) {
      ws.send(JSON.stringify(['AUTH', 'challenge-2']))
      ws.send(JSON.stringify(['OK', event.id, false, 'auth-required: who are you']))
    } else ws.send(JSON.stringify(['OK', event.id, true, '']))
  })
  const pool = new SimplePool()
  const dvm = client([relay.url], { pool, timeoutMs: 1200, republishMs: 400 })
  const session = dvm.session()
  await assert.rejects(session.requestAccount('a@example.org'), TimeoutError)
  assert.equal(relay.state.auths.length, 1)
  assert.equal(relay.state.auths[0].pubkey, session.pubkey)
  assert.ok(verifyEvent(relay.state.auths[0]))
  assert.ok(relay.state.events.length >= 3, `${relay.state.events.length} publications`)
  assert.equal(new Set(relay.state.events.map((e) => e.id)).size, 1)
  assert.deepEqual(relay.state.reqs[0][0]['#e'], [relay.state.events[0].id])
  dvm.close()
  pool.destroy()
})

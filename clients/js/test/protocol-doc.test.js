// docs/protocol.md's byte-exact examples, read with this client: ids, signatures, PoW, NIP-44
// both ways, and the replies opened by the client's own reply code.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import * as nip44 from 'nostr-tools/nip44'
import { getEventHash, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { ProtocolError, SigitDvm } from '../src/node.js'
import { REPO } from './stack.js'

const doc = readFileSync(join(REPO, 'docs', 'protocol.md'), 'utf8')
const examples = doc.slice(doc.indexOf('<!-- BEGIN EXAMPLES'))
/** @param {string} role */
const keyOf = (role) => {
  const row = examples.split('\n').find((l) => l.startsWith(`| ${role}`))
  assert.ok(row, role)
  return row.split('`')[1]
}
const hex = (/** @type {string} */ h) => Uint8Array.from(Buffer.from(h, 'hex'))
const DVM = hex(keyOf('DVM'))
const BROWSER = hex(keyOf('browser'))
const blocks = [...examples.matchAll(/```json (event|plaintext)\n([\s\S]*?)\n```/g)].map((m) => ({ type: m[1], text: m[2] }))

/** Leading zero bits of a hex id. @param {string} id */
function bits(id) {
  let n = 0
  for (const c of id) {
    const v = parseInt(c, 16)
    if (v === 0) n += 4
    else return n + Math.clz32(v) - 28
  }
  return n
}

test('the doc has examples to check', () => {
  assert.ok(blocks.filter((b) => b.type === 'event').length >= 8)
})

test('every example event has a correct id and signature; requests carry their committed PoW', () => {
  for (const block of blocks.filter((b) => b.type === 'event')) {
    const event = JSON.parse(block.text)
    assert.equal(getEventHash(event), event.id)
    assert.ok(verifyEvent(event))
    const nonce = event.tags.find((/** @type {string[]} */ t) => t[0] === 'nonce')
    if (event.kind === 5780) assert.ok(bits(event.id) >= Number(nonce[2]), event.id)
  }
})

test('each request decrypts to the plaintext shown above it, and the keys are the table\'s', () => {
  assert.equal(getPublicKey(BROWSER), keyOf('browser').length === 64 ? examples.split('\n').find((l) => l.startsWith('| browser')).split('`')[3] : '')
  let lastPlaintext = null
  for (const block of blocks) {
    if (block.type === 'plaintext') {
      lastPlaintext = block.text
      continue
    }
    const event = JSON.parse(block.text)
    if (event.kind !== 5780) continue
    const key = nip44.getConversationKey(DVM, event.pubkey)
    assert.equal(nip44.decrypt(event.content, key), lastPlaintext)
  }
})

test('the client opens the example replies: data, an empty success, and a typed error', () => {
  const dvm = new SigitDvm({ pubkey: getPublicKey(DVM), relays: ['ws://127.0.0.1:9'] })
  const replies = blocks.filter((b) => b.type === 'event').map((b) => JSON.parse(b.text)).filter((e) => e.kind === 6780)
  const requests = new Map(blocks.filter((b) => b.type === 'event').map((b) => JSON.parse(b.text)).filter((e) => e.kind === 5780).map((e) => [e.id, e]))
  const outcomes = replies.map((reply) => {
    const request = requests.get(reply.tags.find((/** @type {string[]} */ t) => t[0] === 'e')[1])
    assert.ok(dvm.isReplyTo(reply, request))
    try {
      return dvm.openReply(reply, 'example', BROWSER)
    } catch (err) {
      return err
    }
  })
  // A success without data: {"result": {}} padded with spaces (or, from a DVM with
  // empty_success_replies, an empty content, which the client reads as null).
  assert.ok(outcomes.some((o) => o !== null && !(o instanceof Error) && Object.keys(o).length === 0))
  assert.ok(outcomes.some((o) => o && typeof o.entropy === 'string' && o.entropy.length === 64))
  assert.equal(dvm.openReply({ ...replies[0], content: '' }, 'example', BROWSER), null)
  const error = outcomes.find((o) => o instanceof ProtocolError)
  assert.ok(error)
  assert.equal(error.code, 'email_taken')
  assert.match(error.message, /Log in/)
  dvm.close()
})

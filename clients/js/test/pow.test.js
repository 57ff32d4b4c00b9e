import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { getEventHash } from 'nostr-tools/pure'
import { CancelledError, minePow } from '../src/node.js'
import { leadingZeroBits, sha256Hex } from '../src/pow-core.js'

const template = {
  pubkey: 'ab'.repeat(32),
  created_at: 1795000000,
  kind: 5780,
  tags: [['p', 'cd'.repeat(32)], ['encrypted'], ['expiration', '1795003600']],
  content: 'x'.repeat(300),
}

/** @param {string} hex */
function zeroBits(hex) {
  const words = new Uint32Array(8)
  for (let i = 0; i < 8; i++) words[i] = parseInt(hex.slice(8 * i, 8 * i + 8), 16)
  return leadingZeroBits(words)
}

test('the worker-free SHA-256 matches node:crypto at every padding boundary', () => {
  for (let n = 0; n < 200; n++) {
    const bytes = randomBytes(n)
    assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'), `length ${n}`)
  }
})

test('minePow in a worker returns tags whose event id has the bits, created_at untouched', async () => {
  const progress = []
  const mined = await minePow(template, 14, { onProgress: (p) => progress.push(p) })
  const nonce = mined.tags[mined.tags.length - 1]
  assert.equal(nonce[0], 'nonce')
  assert.equal(nonce[2], '14')
  assert.deepEqual(mined.tags.slice(0, -1), template.tags)
  const id = getEventHash({ ...template, tags: mined.tags })
  assert.equal(id, mined.id)
  assert.ok(zeroBits(id) >= 14, id)
  assert.equal(progress.at(-1).fraction, 1)
  assert.equal(progress.at(-1).tries, mined.tries)
  for (const p of progress.slice(0, -1)) assert.ok(p.fraction > 0 && p.fraction < 1 && p.bits === 14)
})

test('several workers and the inline miner find valid nonces too', async () => {
  for (const opts of [{ workers: 2 }, { inline: true }]) {
    const mined = await minePow(template, 10, opts)
    assert.ok(zeroBits(getEventHash({ ...template, tags: mined.tags })) >= 10)
  }
})

test('an AbortSignal cancels mining at once with CancelledError', async () => {
  for (const inline of [false, true]) {
    const controller = new AbortController()
    const started = Date.now()
    setTimeout(() => controller.abort(), 100)
    await assert.rejects(minePow(template, 40, { signal: controller.signal, inline }), (err) => {
      assert.ok(err instanceof CancelledError)
      assert.equal(err.code, 'cancelled')
      return true
    })
    assert.ok(Date.now() - started < 2000)
  }
})

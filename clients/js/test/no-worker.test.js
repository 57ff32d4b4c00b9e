// Where no worker can start at all (the browser entry, in a runtime without a Worker global: here
// Node without the package's "node" entry), mining runs in slices on the calling thread and
// backups run nostr-tools' nip49 there: slower for the page, but they work.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { getEventHash } from 'nostr-tools/pure'
import { generateSecretKey, makeBackup, minePow, openBackup } from '../src/index.js'
import { workersAvailable } from '../src/workers.js'

test('the browser entry without a Worker global mines on this thread and makes and opens backups', async () => {
  assert.equal(typeof (/** @type {any} */ (globalThis).Worker), 'undefined')
  assert.equal(workersAvailable(), false)
  const template = { pubkey: 'ab'.repeat(32), created_at: 1795000000, kind: 5780, tags: [], content: 'x' }
  const mined = await minePow(template, 10)
  assert.equal(getEventHash({ ...template, tags: mined.tags }), mined.id)
  const key = generateSecretKey()
  const backup = await makeBackup(key, 'pw', '', { logN: 10 })
  assert.deepEqual(await openBackup(backup, 'pw', ''), key)
  await assert.rejects(openBackup(backup, 'px', ''), { code: 'wrong_password' })
})

// The worker: generated from worker/entry.js (tools/build-worker.mjs) and up to date; a browser
// build of the package names no `node:` module; every worker failure is a WorkerError.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { buildWorker } from '../tools/build-worker.mjs'
import { SigitError, WorkerError, generateSecretKey, makeBackup, minePow } from '../src/node.js'
import { setWorkerHost } from '../src/workers.js'

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const template = { pubkey: 'ab'.repeat(32), created_at: 1795000000, kind: 5780, tags: [['p', 'cd'.repeat(32)]], content: 'x' }

test('src/worker-source.js and dist/worker.js are what tools/build-worker.mjs makes of worker/ today', async () => {
  const out = mkdtempSync(join(tmpdir(), 'sigit-worker-'))
  try {
    const files = await buildWorker(out)
    for (const name of Object.keys(files)) {
      assert.equal(readFileSync(join(PACKAGE, name), 'utf8'), files[name], `${name} is stale: npm run build:worker`)
    }
    // One classic script with no imports: nothing for a bundler to find, copy or rewrite.
    assert.doesNotMatch(files['dist/worker.js'], /\bimport\s*[({"']|\brequire\(|import\.meta/)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})

test('a browser build of the package (the "browser" condition) names no node: module and no worker file', async () => {
  const result = await build({
    stdin: { contents: "export * from 'sigit-dvm-client'", resolveDir: PACKAGE },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
    metafile: true,
  })
  const inputs = Object.keys(result.metafile.inputs)
  assert.ok(inputs.some((i) => i.endsWith('src/index.js')), 'the browser entry')
  assert.ok(!inputs.some((i) => /node\.js$|host-node/.test(i)), inputs.join(' '))
  assert.doesNotMatch(result.outputFiles[0].text, /["']node:/)
  assert.doesNotMatch(result.outputFiles[0].text, /new URL\([^)]*import\.meta\.url/)
})

test('a worker that fails to start or dies is a WorkerError (code worker_failed), for mining and backups', async (t) => {
  t.after(() => import('../src/host-node.js?again')) // put Node's host back for any later test
  setWorkerHost(() => {
    throw new WorkerError('no workers here')
  })
  await assert.rejects(minePow(template, 8), (err) => err instanceof WorkerError && err.code === 'worker_failed')
  setWorkerHost(({ onError }) => ({ post: () => setTimeout(() => onError(new WorkerError('it died')), 10), stop: () => {} }))
  await assert.rejects(makeBackup(generateSecretKey(), 'pw', '', { logN: 10 }), (err) => {
    assert.ok(err instanceof SigitError && err instanceof WorkerError)
    assert.equal(err.code, 'worker_failed')
    assert.match(err.userMessage, /background work/)
    return true
  })
  setWorkerHost(({ onMessage }) => ({ post: () => setTimeout(() => onMessage({ type: 'error', code: 'worker_failed', message: 'boom' }), 10), stop: () => {} }))
  await assert.rejects(minePow(template, 8), WorkerError)
})

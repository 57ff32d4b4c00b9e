// Mining off the main thread: in the client's worker (workers.js: a Worker in browsers,
// worker_threads in Node), or on the calling thread in slices where no worker can start. The
// event's fields (created_at included) are fixed before mining; only the nonce tag's counter changes.
import { CancelledError, WorkerError } from './errors.js'
import { NONCE_MARK, mine } from './pow-core.js'
import { startWorker, workersAvailable } from './workers.js'

/**
 * @typedef {import('./types.js').PowProgress} PowProgress
 * @typedef {{signal?: AbortSignal, onProgress?: (p: PowProgress) => void, workers?: number, inline?: boolean, workerUrl?: string | URL}} MineOptions
 */

/**
 * Mine `template` (an unsigned event without a nonce tag) to `bits`; return its tags with
 * `["nonce", <counter>, <bits>]` appended, and the id.
 * @param {{pubkey: string, created_at: number, kind: number, tags: string[][], content: string}} template
 * @param {number} bits
 * @param {MineOptions} [opts]
 * @returns {Promise<{tags: string[][], id: string, tries: number}>}
 */
export async function minePow(template, bits, opts = {}) {
  const tags = [...template.tags, ['nonce', NONCE_MARK, String(bits)]]
  const serialized = JSON.stringify([0, template.pubkey, template.created_at, template.kind, tags, template.content])
  const found = opts.inline || !workersAvailable() ? await mineInline(serialized, bits, opts) : await mineInWorkers(serialized, bits, opts)
  opts.onProgress?.({ ...progress(found.tries, bits), fraction: 1 }) // done: a bar can say "waiting"
  const last = tags[tags.length - 1]
  tags[tags.length - 1] = [last[0], found.nonce, last[2]]
  return { tags, id: found.id, tries: found.tries }
}

/** @param {number} tries @param {number} bits @returns {PowProgress} */
function progress(tries, bits) {
  const expected = 2 ** bits
  // The chance that a miner would have found it by now: a fair estimate for a progress bar.
  return { stage: 'pow', tries, expected, bits, fraction: 1 - Math.exp(-tries / expected) }
}

/** @param {AbortSignal | undefined} signal */
function throwIfAborted(signal) {
  if (signal?.aborted) throw new CancelledError('proof of work cancelled')
}

/**
 * On the calling thread, in slices that yield to the event loop (for environments without workers).
 * @param {string} serialized @param {number} bits @param {MineOptions} opts
 * @returns {Promise<{nonce: string, tries: number, id: string}>}
 */
async function mineInline(serialized, bits, opts) {
  const slice = 4096
  let start = 0
  for (;;) {
    throwIfAborted(opts.signal)
    let found = null
    let tries = 0
    try {
      found = mine(serialized, bits, {
        start,
        every: slice,
        progress: (t) => {
          tries = t
          throw SLICE_DONE
        },
      })
    } catch (err) {
      if (err !== SLICE_DONE) throw err
    }
    if (found) return { ...found, tries: start + found.tries }
    start += tries
    opts.onProgress?.(progress(start, bits))
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
}
const SLICE_DONE = Symbol('slice done')

/**
 * @param {string} serialized @param {number} bits @param {MineOptions} opts
 * @returns {Promise<{nonce: string, tries: number, id: string}>}
 */
async function mineInWorkers(serialized, bits, opts) {
  throwIfAborted(opts.signal)
  const count = Math.max(1, Math.floor(opts.workers ?? 1))
  /** @type {import('./workers.js').WorkerHandle[]} */
  const workers = []
  const tries = new Array(count).fill(0)
  /** @type {() => void} */
  let settle = () => {}
  try {
    return await new Promise((resolve, reject) => {
      const onAbort = () => reject(new CancelledError('proof of work cancelled'))
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      settle = () => opts.signal?.removeEventListener('abort', onAbort)
      /** @param {number} i @param {any} msg */
      const onMessage = (i, msg) => {
        if (msg?.type === 'progress') {
          tries[i] = msg.tries
          opts.onProgress?.(progress(tries.reduce((a, b) => a + b, 0), bits))
        } else if (msg?.type === 'done') {
          tries[i] = msg.tries
          resolve({ nonce: msg.nonce, id: msg.id, tries: tries.reduce((a, b) => a + b, 0) })
        } else {
          reject(new WorkerError(`proof-of-work worker failed: ${msg?.message}`))
        }
      }
      try {
        for (let i = 0; i < count; i++) {
          const w = startWorker({ url: opts.workerUrl, onMessage: (m) => onMessage(i, m), onError: reject })
          workers.push(w)
          w.post({ op: 'pow', serialized, bits, start: i, step: count })
        }
      } catch (err) {
        reject(err instanceof WorkerError ? err : new WorkerError(String(err)))
      }
    })
  } finally {
    settle()
    for (const w of workers) w.stop()
  }
}

// Mining off the main thread: a module Worker in browsers, worker_threads in Node. The event's
// fields (created_at included) are fixed before mining; only the nonce tag's counter changes.
import { CancelledError } from './errors.js'
import { NONCE_MARK, mine } from './pow-core.js'

const isNode =
  typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined'

/**
 * @typedef {{tries: number, expected: number, fraction: number, bits: number}} PowProgress
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
  const found = opts.inline ? await mineInline(serialized, bits, opts) : await mineInWorkers(serialized, bits, opts)
  opts.onProgress?.({ ...progress(found.tries, bits), fraction: 1 }) // done: a bar can say "waiting"
  const last = tags[tags.length - 1]
  tags[tags.length - 1] = [last[0], found.nonce, last[2]]
  return { tags, id: found.id, tries: found.tries }
}

/** @param {number} tries @param {number} bits @returns {PowProgress} */
function progress(tries, bits) {
  const expected = 2 ** bits
  // The chance that a miner would have found it by now: a fair estimate for a progress bar.
  return { tries, expected, bits, fraction: 1 - Math.exp(-tries / expected) }
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
  const url = opts.workerUrl ?? new URL('./pow-worker.js', import.meta.url)
  /** @type {{post: (m: unknown) => void, stop: () => void}[]} */
  const workers = []
  const tries = new Array(count).fill(0)
  try {
    return await new Promise((resolve, reject) => {
      const onAbort = () => reject(new CancelledError('proof of work cancelled'))
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      const settle = () => opts.signal?.removeEventListener('abort', onAbort)
      /** @param {number} i @param {any} msg */
      const onMessage = (i, msg) => {
        if (msg.type === 'progress') {
          tries[i] = msg.tries
          opts.onProgress?.(progress(tries.reduce((a, b) => a + b, 0), bits))
        } else if (msg.type === 'done') {
          settle()
          tries[i] = msg.tries
          resolve({ nonce: msg.nonce, id: msg.id, tries: tries.reduce((a, b) => a + b, 0) })
        } else {
          settle()
          reject(new Error(`proof-of-work worker failed: ${msg.message}`))
        }
      }
      /** @param {unknown} err */
      const onError = (err) => {
        settle()
        reject(err instanceof Error ? err : new Error(`proof-of-work worker failed: ${String(err)}`))
      }
      startWorkers(url, count, onMessage, onError).then(
        (started) => {
          workers.push(...started)
          if (opts.signal?.aborted) return
          started.forEach((w, i) => w.post({ serialized, bits, start: i, step: count }))
        },
        onError,
      )
    })
  } finally {
    for (const w of workers) w.stop()
  }
}

/**
 * @param {string | URL} url @param {number} count
 * @param {(i: number, msg: any) => void} onMessage @param {(err: unknown) => void} onError
 * @returns {Promise<{post: (m: unknown) => void, stop: () => void}[]>}
 */
async function startWorkers(url, count, onMessage, onError) {
  if (isNode) {
    const { Worker } = await import('node:worker_threads')
    return Array.from({ length: count }, (_, i) => {
      // --input-type (node -e with ESM) is refused for a worker's file: do not pass it on.
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'))
      const w = new Worker(url, { execArgv })
      w.on('message', (m) => onMessage(i, m))
      w.on('error', onError)
      return { post: (m) => w.postMessage(m), stop: () => void w.terminate() }
    })
  }
  return Array.from({ length: count }, (_, i) => {
    const w = new Worker(url, { type: 'module' })
    w.onmessage = (e) => onMessage(i, e.data)
    w.onerror = (e) => onError(new Error(e.message || 'worker error'))
    return { post: (m) => w.postMessage(m), stop: () => w.terminate() }
  })
}

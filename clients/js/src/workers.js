// Starting the client's worker (worker-source.js: proof of work and backups). In browsers: a
// classic Worker from a Blob of the pre-built script, or from `workerUrl` where the site serves
// dist/worker.js (a Content-Security-Policy without `blob:` in worker-src). Node's entry (node.js)
// installs a host on worker_threads instead, so nothing here names a `node:` module and a browser
// build never sees one. Every failure is a WorkerError (code `worker_failed`).
import { CancelledError, WorkerError } from './errors.js'
import { WORKER_SOURCE } from './worker-source.js'

/**
 * @typedef {{post: (message: unknown) => void, stop: () => void}} WorkerHandle
 * @typedef {(opts: {url?: string | URL, onMessage: (data: any) => void, onError: (err: WorkerError) => void}) => WorkerHandle} WorkerHost
 */

/** @type {string | null} */
let blobUrl = null

/** @type {WorkerHost} */
function browserHost({ url, onMessage, onError }) {
  const WorkerClass = /** @type {any} */ (globalThis).Worker
  if (typeof WorkerClass !== 'function') throw new WorkerError('no Worker in this environment')
  let worker
  try {
    if (!url) blobUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }))
    worker = new WorkerClass(url ?? blobUrl)
  } catch (err) {
    throw new WorkerError(`the worker could not start (${describe(err)}); a Content-Security-Policy must allow blob: in worker-src, or serve dist/worker.js and pass workerUrl`, { url: String(url ?? 'blob:') })
  }
  worker.onmessage = (/** @type {MessageEvent} */ e) => onMessage(e.data)
  worker.onerror = (/** @type {ErrorEvent} */ e) => {
    e.preventDefault?.()
    onError(new WorkerError(`the worker failed: ${e.message || 'it did not load (a Content-Security-Policy, or a workerUrl that is not dist/worker.js)'}`, { url: String(url ?? 'blob:') }))
  }
  worker.onmessageerror = () => onError(new WorkerError('a message from the worker could not be read'))
  return { post: (message) => worker.postMessage(message), stop: () => worker.terminate() }
}

/** @type {WorkerHost} */
let host = browserHost
let hostIsBrowser = true

/** Replace how workers start (node.js does, with worker_threads). @param {WorkerHost} next */
export function setWorkerHost(next) {
  host = next
  hostIsBrowser = false
}

/** Whether a worker can start here at all (false: no Worker global and no other host). */
export function workersAvailable() {
  return !hostIsBrowser || typeof (/** @type {any} */ (globalThis).Worker) === 'function'
}

/** @param {unknown} err */
function describe(err) {
  return err instanceof Error ? err.message : String(err)
}

/**
 * Start one worker. `onMessage` gets its messages; `onError` a WorkerError if it fails.
 * @param {{url?: string | URL, onMessage: (data: any) => void, onError: (err: WorkerError) => void}} opts
 * @returns {WorkerHandle}
 */
export function startWorker(opts) {
  return host(opts)
}

/**
 * One operation in a worker of its own: resolves with its `done` message, passes `progress`
 * messages on, rejects with CancelledError when `signal` fires (the worker is terminated), with
 * `onFailure(code, message)`'s error for an `error` message, with WorkerError if the worker fails.
 * @param {Record<string, unknown>} message
 * @param {{signal?: AbortSignal, url?: string | URL, onProgress?: (data: any) => void, onFailure?: (code: string, message: string) => Error | undefined}} [opts]
 * @returns {Promise<any>}
 */
export function runInWorker(message, opts = {}) {
  if (opts.signal?.aborted) return Promise.reject(new CancelledError())
  return new Promise((resolve, reject) => {
    /** @type {WorkerHandle | null} */
    let worker = null
    let settled = false
    const finish = (/** @type {() => void} */ fn) => {
      if (settled) return
      settled = true
      opts.signal?.removeEventListener('abort', onAbort)
      worker?.stop()
      fn()
    }
    const onAbort = () => finish(() => reject(new CancelledError()))
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      worker = startWorker({
        url: opts.url,
        onMessage: (data) => {
          if (data?.type === 'progress') opts.onProgress?.(data)
          else if (data?.type === 'done') finish(() => resolve(data))
          else {
            const code = String(data?.code ?? 'worker_failed')
            const text = String(data?.message ?? 'the worker failed')
            finish(() => reject(opts.onFailure?.(code, text) ?? new WorkerError(text)))
          }
        },
        onError: (err) => finish(() => reject(err)),
      })
      worker.post(message)
    } catch (err) {
      finish(() => reject(err instanceof WorkerError ? err : new WorkerError(describe(err))))
    }
  })
}

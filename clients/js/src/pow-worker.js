// The PoW worker: a browser module Worker or a Node worker_threads worker, same messages.
// In: {serialized, bits, start, step}. Out: {type: 'progress', tries} ... then {type: 'done', nonce, tries, id}.
import { mine } from './pow-core.js'

/** @param {(message: unknown) => void} post */
function handler(post) {
  return (/** @type {any} */ data) => {
    try {
      const found = mine(data.serialized, data.bits, {
        start: data.start,
        step: data.step,
        progress: (tries) => post({ type: 'progress', tries }),
      })
      post({ type: 'done', ...found })
    } catch (err) {
      post({ type: 'error', message: String(err) })
    }
  }
}

if (typeof process !== 'undefined' && process.versions?.node && typeof window === 'undefined' && typeof self === 'undefined') {
  const { parentPort } = await import('node:worker_threads')
  if (parentPort) {
    const port = parentPort
    const run = handler((m) => port.postMessage(m))
    port.on('message', run)
  }
} else {
  const scope = /** @type {any} */ (globalThis)
  const run = handler((m) => scope.postMessage(m))
  scope.onmessage = (/** @type {MessageEvent} */ event) => run(event.data)
}

// Node's worker host: the same pre-built worker script, run by worker_threads with `eval` behind
// a few lines that give it a browser worker's postMessage / onmessage. Imported by node.js only
// (the package's "node" export condition), so browser builds never see `node:worker_threads`.
import { Worker } from 'node:worker_threads'
import { WorkerError } from './errors.js'
import { WORKER_SOURCE } from './worker-source.js'
import { setWorkerHost } from './workers.js'

const SHIM =
  "const { parentPort } = require('node:worker_threads');" +
  'globalThis.postMessage = (m) => parentPort.postMessage(m);' +
  "parentPort.on('message', (data) => globalThis.onmessage({ data }));\n"

setWorkerHost(({ onMessage, onError }) => {
  // --input-type (node -e with ESM) is refused for a worker: do not pass it on.
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'))
  let stopped = false
  const worker = new Worker(SHIM + WORKER_SOURCE, { eval: true, execArgv })
  worker.on('message', onMessage)
  worker.on('error', (err) => onError(new WorkerError(`the worker failed: ${err.message}`)))
  worker.on('exit', (code) => {
    if (!stopped) onError(new WorkerError(`the worker exited (${code})`))
  })
  return {
    post: (message) => worker.postMessage(message),
    stop: () => {
      stopped = true
      void worker.terminate()
    },
  }
})

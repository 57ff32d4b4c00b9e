// The package's entry in Node (the "node" export condition): everything the browser entry has,
// with the worker started by worker_threads.
import './host-node.js'

export * from './index.js'

// sigit-dvm-client: the browser's side of docs/protocol.md (sigit-dvm/1, /2 and /3). This is the
// browser entry; Node's (node.js) adds a worker host on worker_threads.

/**
 * @typedef {import('./types.js').DvmInfo} DvmInfo
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').DiscoverOptions} DiscoverOptions
 * @typedef {import('./types.js').CallOptions} CallOptions
 * @typedef {import('./types.js').Progress} Progress
 * @typedef {import('./types.js').PowProgress} PowProgress
 * @typedef {import('./types.js').BackupProgress} BackupProgress
 * @typedef {import('./types.js').AccountStatus} AccountStatus
 * @typedef {import('./types.js').VerifyResult} VerifyResult
 * @typedef {import('./types.js').FlowStorage} FlowStorage
 * @typedef {import('./types.js').SessionOptions} SessionOptions
 * @typedef {import('./types.js').ResumeOptions} ResumeOptions
 * @typedef {import('./types.js').SavedFlow} SavedFlow
 * @typedef {import('./signer.js').Signer} Signer
 * @typedef {import('./signer.js').AccountKey} AccountKey
 * @typedef {import('./transport.js').RelayPool} RelayPool
 * @typedef {import('./messages.js').MessageCatalog} MessageCatalog
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 */
export { FLOW_STORAGE_KEY, SigitDvm, Session, discover, normalizeCode } from './client.js'
export { makeBackup, openBackup } from './backup.js'
export {
  ANNOUNCEMENT_KIND,
  DEFAULT_POW_BITS,
  DEFAULT_REQUEST_KIND,
  PROTOCOL,
  PROTOCOLS,
  commonVersion,
  fetchAnnouncement,
  parseAnnouncement,
  resolveIdentifier,
} from './discovery.js'
export {
  BackupError,
  CLIENT_ERROR_CODES,
  CancelledError,
  DiscoveryError,
  InputError,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  RelayError,
  ReplyError,
  SignerError,
  SigitError,
  TimeoutError,
  WorkerError,
} from './errors.js'
export { MESSAGES_EN, userMessage } from './messages.js'
export { minePow } from './pow.js'
export { RelayConnection } from './relay.js'
export { asSigner, keySigner } from './signer.js'
export { generateSecretKey, getPublicKey } from 'nostr-tools/pure'

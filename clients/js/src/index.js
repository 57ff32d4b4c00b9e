// sigit-dvm-client: the browser's side of docs/protocol.md (sigit-dvm/1 and sigit-dvm/2).

/**
 * @typedef {import('./types.js').DvmInfo} DvmInfo
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').CallOptions} CallOptions
 * @typedef {import('./types.js').PowProgress} PowProgress
 * @typedef {import('./types.js').AccountStatus} AccountStatus
 * @typedef {import('./types.js').VerifyResult} VerifyResult
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 */
export { SigitDvm, Session, discover } from './client.js'
export { makeBackup, openBackup } from './backup.js'
export {
  ANNOUNCEMENT_KIND,
  DEFAULT_POW_BITS,
  DEFAULT_REQUEST_KIND,
  PROTOCOL,
  PROTOCOLS,
  fetchAnnouncement,
  parseAnnouncement,
  resolveIdentifier,
} from './discovery.js'
export {
  BackupError,
  CancelledError,
  DiscoveryError,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  RelayError,
  ReplyError,
  SigitError,
  TimeoutError,
} from './errors.js'
export { minePow } from './pow.js'
export { RelayConnection } from './relay.js'
export { generateSecretKey, getPublicKey } from 'nostr-tools/pure'

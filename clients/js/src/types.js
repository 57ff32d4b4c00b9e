// The client's option and result shapes, as JSDoc types (tsc turns them into types/*.d.ts).

/**
 * @typedef {object} DvmInfo What discovery learned (or the constructor was told) about the DVM.
 * @property {string} pubkey the DVM's public key, hex
 * @property {string[]} relays where requests go and replies are awaited
 * @property {string} name from the announcement
 * @property {string} about from the announcement
 * @property {string} protocol the announcement's `protocol` member
 * @property {string[]} protocols every version it speaks (`sigit-dvm/2`: register, seals;
 *   `sigit-dvm/3`: proven keys, long codes, PoW prices, revoke_sessions, lang)
 * @property {number} requestKind the request kind (default 5780)
 * @property {number} replyKind the reply kind (request kind + 1000)
 * @property {string[]} encryption the schemes it accepts (`nip44`, `nip04`)
 * @property {Record<string, number>} powBits the minimum PoW bits per method
 * @property {number} createdAtWindowS how far `created_at` may be from its clock
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} pubkey the DVM's public key, hex
 * @property {string[]} relays
 * @property {number} [requestKind] default 5780
 * @property {number} [replyKind] default requestKind + 1000
 * @property {Record<string, number>} [powBits] per method; the daemon's defaults otherwise (DEFAULT_POW_BITS)
 * @property {string} [name]
 * @property {string} [about]
 * @property {string} [protocol]
 * @property {string[]} [protocols] default: every version this client speaks
 * @property {boolean} [sealed] account methods sealed from ephemeral keys (default: when the DVM
 *   speaks sigit-dvm/2 or later); false: signed by the account key, which the relay then shows
 * @property {boolean} [proveKeys] `register` and `activate` sealed by the key they name (default:
 *   when the DVM speaks sigit-dvm/3, which requires it)
 * @property {string[]} [encryption]
 * @property {number} [createdAtWindowS]
 * @property {number} [timeoutMs] how long to wait for a reply (default 60000)
 * @property {number} [republishMs] republish the same event this often while waiting (default 10000)
 * @property {number} [connectTimeoutMs] per relay connection and OK (default 5000)
 * @property {number | null} [expirationS] NIP-40 expiration after created_at (default 3600; null: none)
 * @property {'nip44' | 'nip04'} [scheme] request encryption (default nip44)
 * @property {number} [powWorkers] workers mining in parallel (default 1)
 * @property {number} [maxPowBits] the most PoW bits a `pow_too_low` may ask for before the call
 *   fails (default 22: about 30 s in a page)
 * @property {string | URL} [workerUrl] where the site serves the package's dist/worker.js (for a
 *   Content-Security-Policy without `blob:` in worker-src); default: a Blob of the same script
 * @property {string} [lang] the user's language (BCP 47, e.g. `de`, `pt-BR`) for the DVM's mails;
 *   sent to DVMs that speak sigit-dvm/3
 * @property {FlowStorage} [storage] where sessions save their flow (e.g. `localStorage`)
 * @property {string} [storageKey] the storage key (default `sigit-dvm-flow`)
 * @property {import('./transport.js').RelayPool} [pool] the site's relay pool (nostr-tools
 *   SimplePool): requests and replies go through it instead of the client's own connections
 * @property {any} [WebSocket] a WebSocket class (Node < 22: the `ws` package's)
 * @property {() => number} [now] the clock, in unix seconds
 */

/**
 * @typedef {Partial<ClientOptions> & {fetch?: typeof fetch, allowHttp?: boolean, fetchTimeoutMs?: number, signal?: AbortSignal}} DiscoverOptions
 *   `discover()`'s options: any ClientOptions, plus the NIP-05 request's `fetch`, `allowHttp`,
 *   `fetchTimeoutMs` (10000), and `signal` (cancels discovery: CancelledError)
 */

/**
 * @typedef {object} PowProgress
 * @property {'pow'} stage
 * @property {number} tries hashes tried so far
 * @property {number} expected 2^bits, the mean number of tries
 * @property {number} fraction the chance a miner would have found it by now, 0..1 (for a bar);
 *   exactly 1 once the nonce is found (the last call)
 * @property {number} bits the target
 */

/**
 * @typedef {object} BackupProgress
 * @property {'backup'} stage scrypt (NIP-49) making or opening a backup, in the worker
 * @property {number} fraction 0..1; exactly 1 at the end
 */

/** @typedef {PowProgress | BackupProgress} Progress */

/**
 * @typedef {object} CallOptions
 * @property {AbortSignal} [signal] cancels mining, a backup, or waiting (CancelledError)
 * @property {(progress: Progress) => void} [onProgress] PoW (`stage: 'pow'`) and backup
 *   (`stage: 'backup'`) progress, from the worker
 * @property {number} [timeoutMs]
 * @property {number} [republishMs]
 * @property {'nip44' | 'nip04'} [scheme]
 * @property {number} [powBits] mine to this instead of the announced minimum (and never again)
 * @property {number} [maxPowBits] override the client's ceiling for this call
 * @property {number} [powWorkers]
 * @property {boolean} [powInline] mine on this thread, in slices (no Worker available)
 * @property {number} [createdAt] fix created_at (unix seconds) instead of now
 * @property {import('./signer.js').AccountKey} [seal] seal the request with this account key or
 *   signer (the signing key carries it)
 * @property {boolean} [sealed] for account methods: override the client's `sealed`
 * @property {string} [lang] override the client's `lang` for this request
 */

/**
 * @typedef {object} FlowStorage Where a session saves its flow: `localStorage` as it is, or an
 *   adapter (IndexedDB...) whose methods may return promises.
 * @property {(key: string) => string | null | undefined | Promise<string | null | undefined>} getItem
 * @property {(key: string, value: string) => void | Promise<void>} setItem
 * @property {(key: string) => void | Promise<void>} removeItem
 */

/**
 * @typedef {object} SessionOptions
 * @property {FlowStorage} [storage] save the flow here while a code is awaited (default: the client's)
 * @property {string} [storageKey] default: the client's (`sigit-dvm-flow`)
 */

/**
 * @typedef {object} ResumeOptions
 * @property {FlowStorage} [storage] default: the client's
 * @property {string} [storageKey] default: the client's (`sigit-dvm-flow`)
 * @property {number} [maxAgeS] a flow saved longer ago is deleted, not resumed (default 3600)
 */

/**
 * @typedef {object} SavedFlow What a session saves (JSON): the ephemeral key in hex, so treat
 *   the storage as holding a secret for the flow's duration (docs/protocol.md, "The code email").
 * @property {1} v
 * @property {string} dvm the DVM's pubkey
 * @property {string} key the ephemeral secret key, hex
 * @property {'signup' | 'register' | 'login'} flow
 * @property {'code'} step
 * @property {string} email
 * @property {string} [pubkey] `register`: the account's public key
 * @property {string} [backup] `register`: the account's backup (encrypted under the password)
 * @property {number} savedAt unix seconds
 */

/**
 * @typedef {object} AccountStatus
 * @property {string} email
 * @property {boolean} verified
 * @property {boolean} activated
 * @property {string | null} pending_email
 * @property {number | null} grace_s
 * @property {{login_notice: boolean}} notifications
 * @property {number} created_at
 */

/**
 * @typedef {object} VerifyResult `{entropy}` for a signup; `{}` for a register;
 *   `{entropy, pubkey, backup}` for a login (no entropy for an account made by register).
 * @property {string} [entropy] 64 hex
 * @property {string} [pubkey] the account's key (login)
 * @property {string} [backup] the account's encrypted key (login)
 */

export {}

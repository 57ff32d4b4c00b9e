// The client's option and result shapes, as JSDoc types (tsc turns them into types/*.d.ts).

/**
 * @typedef {object} DvmInfo What discovery learned (or the constructor was told) about the DVM.
 * @property {string} pubkey the DVM's public key, hex
 * @property {string[]} relays where requests go and replies are awaited
 * @property {string} name from the announcement
 * @property {string} about from the announcement
 * @property {string} protocol the first protocol version it speaks, `sigit-dvm/1`
 * @property {string[]} protocols every version it speaks (`sigit-dvm/2`: register, seals)
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
 * @property {Record<string, number>} [powBits] per method; docs/protocol.md's defaults otherwise
 * @property {string} [name]
 * @property {string} [about]
 * @property {string} [protocol]
 * @property {string[]} [protocols] default: every version this client speaks
 * @property {boolean} [sealed] account methods sealed from ephemeral keys (default: when the DVM
 *   speaks sigit-dvm/2); false: signed by the account key, which the relay then shows
 * @property {string[]} [encryption]
 * @property {number} [createdAtWindowS]
 * @property {number} [timeoutMs] how long to wait for a reply (default 60000)
 * @property {number} [republishMs] republish the same event this often while waiting (default 10000)
 * @property {number} [connectTimeoutMs] per relay connection and OK (default 5000)
 * @property {number | null} [expirationS] NIP-40 expiration after created_at (default 3600; null: none)
 * @property {'nip44' | 'nip04'} [scheme] request encryption (default nip44)
 * @property {number} [powWorkers] workers mining in parallel (default 1)
 * @property {string | URL} [powWorkerUrl] where pow-worker.js is served, if a bundler moved it
 * @property {any} [WebSocket] a WebSocket class (Node < 22: the `ws` package's)
 * @property {() => number} [now] the clock, in unix seconds
 */

/**
 * @typedef {object} PowProgress
 * @property {number} tries hashes tried so far
 * @property {number} expected 2^bits, the mean number of tries
 * @property {number} fraction the chance a miner would have found it by now, 0..1 (for a bar);
 *   exactly 1 once the nonce is found (the last call)
 * @property {number} bits the target
 */

/**
 * @typedef {object} CallOptions
 * @property {AbortSignal} [signal] cancels mining or waiting (CancelledError)
 * @property {(progress: PowProgress) => void} [onProgress] PoW progress, from the worker
 * @property {number} [timeoutMs]
 * @property {number} [republishMs]
 * @property {'nip44' | 'nip04'} [scheme]
 * @property {number} [powBits] override the announced minimum (tests)
 * @property {number} [powWorkers]
 * @property {boolean} [powInline] mine on this thread, in slices (no Worker available)
 * @property {number} [createdAt] fix created_at (unix seconds) instead of now
 * @property {Uint8Array} [seal] seal the request with this account key (the signing key carries it)
 * @property {boolean} [sealed] for account methods: override the client's `sealed`
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

/**
 * What discovery learned (or the constructor was told) about the DVM.
 */
export type DvmInfo = {
    /**
     * the DVM's public key, hex
     */
    pubkey: string;
    /**
     * where requests go and replies are awaited
     */
    relays: string[];
    /**
     * from the announcement
     */
    name: string;
    /**
     * from the announcement
     */
    about: string;
    /**
     * the announcement's `protocol` member
     */
    protocol: string;
    /**
     * every version it speaks (`sigit-dvm/2`: register, seals;
     * `sigit-dvm/3`: proven keys, long codes, PoW prices, revoke_sessions, lang)
     */
    protocols: string[];
    /**
     * the request kind (default 5780)
     */
    requestKind: number;
    /**
     * the reply kind (request kind + 1000)
     */
    replyKind: number;
    /**
     * the schemes it accepts (`nip44`, `nip04`)
     */
    encryption: string[];
    /**
     * the minimum PoW bits per method
     */
    powBits: Record<string, number>;
    /**
     * how far `created_at` may be from its clock
     */
    createdAtWindowS: number;
};
export type ClientOptions = {
    /**
     * the DVM's public key, hex
     */
    pubkey: string;
    relays: string[];
    /**
     * default 5780
     */
    requestKind?: number | undefined;
    /**
     * default requestKind + 1000
     */
    replyKind?: number | undefined;
    /**
     * per method; the daemon's defaults otherwise (DEFAULT_POW_BITS)
     */
    powBits?: Record<string, number> | undefined;
    name?: string | undefined;
    about?: string | undefined;
    protocol?: string | undefined;
    /**
     * default: every version this client speaks
     */
    protocols?: string[] | undefined;
    /**
     * account methods sealed from ephemeral keys (default: when the DVM
     * speaks sigit-dvm/2 or later); false: signed by the account key, which the relay then shows
     */
    sealed?: boolean | undefined;
    /**
     * `register` and `activate` sealed by the key they name (default:
     * when the DVM speaks sigit-dvm/3, which requires it)
     */
    proveKeys?: boolean | undefined;
    encryption?: string[] | undefined;
    createdAtWindowS?: number | undefined;
    /**
     * how long to wait for a reply (default 60000)
     */
    timeoutMs?: number | undefined;
    /**
     * republish the same event this often while waiting (default 10000)
     */
    republishMs?: number | undefined;
    /**
     * per relay connection and OK (default 5000)
     */
    connectTimeoutMs?: number | undefined;
    /**
     * NIP-40 expiration after created_at (default 3600; null: none)
     */
    expirationS?: number | null | undefined;
    /**
     * request encryption (default nip44)
     */
    scheme?: "nip44" | "nip04" | undefined;
    /**
     * workers mining in parallel (default 1)
     */
    powWorkers?: number | undefined;
    /**
     * the most PoW bits a `pow_too_low` may ask for before the call
     * fails (default 22: about 30 s in a page)
     */
    maxPowBits?: number | undefined;
    /**
     * where the site serves the package's dist/worker.js (for a
     * Content-Security-Policy without `blob:` in worker-src); default: a Blob of the same script
     */
    workerUrl?: string | URL | undefined;
    /**
     * the user's language (BCP 47, e.g. `de`, `pt-BR`) for the DVM's mails;
     * sent to DVMs that speak sigit-dvm/3
     */
    lang?: string | undefined;
    /**
     * where sessions save their flow (e.g. `localStorage`)
     */
    storage?: FlowStorage | undefined;
    /**
     * the storage key (default `sigit-dvm-flow`)
     */
    storageKey?: string | undefined;
    /**
     * the site's relay pool (nostr-tools
     * SimplePool): requests and replies go through it instead of the client's own connections
     */
    pool?: import("./transport.js").RelayPool | undefined;
    /**
     * a WebSocket class (Node < 22: the `ws` package's)
     */
    WebSocket?: any;
    /**
     * the clock, in unix seconds
     */
    now?: (() => number) | undefined;
};
/**
 * `discover()`'s options: any ClientOptions, plus the NIP-05 request's `fetch`, `allowHttp`,
 * `fetchTimeoutMs` (10000), and `signal` (cancels discovery: CancelledError)
 */
export type DiscoverOptions = Partial<ClientOptions> & {
    fetch?: typeof fetch;
    allowHttp?: boolean;
    fetchTimeoutMs?: number;
    signal?: AbortSignal;
};
export type PowProgress = {
    stage: "pow";
    /**
     * hashes tried so far
     */
    tries: number;
    /**
     * 2^bits, the mean number of tries
     */
    expected: number;
    /**
     * the chance a miner would have found it by now, 0..1 (for a bar);
     * exactly 1 once the nonce is found (the last call)
     */
    fraction: number;
    /**
     * the target
     */
    bits: number;
};
export type BackupProgress = {
    /**
     * scrypt (NIP-49) making or opening a backup, in the worker
     */
    stage: "backup";
    /**
     * 0..1; exactly 1 at the end
     */
    fraction: number;
};
export type Progress = PowProgress | BackupProgress;
export type CallOptions = {
    /**
     * cancels mining, a backup, or waiting (CancelledError)
     */
    signal?: AbortSignal | undefined;
    /**
     * PoW (`stage: 'pow'`) and backup
     * (`stage: 'backup'`) progress, from the worker
     */
    onProgress?: ((progress: Progress) => void) | undefined;
    timeoutMs?: number | undefined;
    republishMs?: number | undefined;
    scheme?: "nip44" | "nip04" | undefined;
    /**
     * mine to this instead of the announced minimum (and never again)
     */
    powBits?: number | undefined;
    /**
     * override the client's ceiling for this call
     */
    maxPowBits?: number | undefined;
    powWorkers?: number | undefined;
    /**
     * mine on this thread, in slices (no Worker available)
     */
    powInline?: boolean | undefined;
    /**
     * fix created_at (unix seconds) instead of now
     */
    createdAt?: number | undefined;
    /**
     * seal the request with this account key or
     * signer (the signing key carries it)
     */
    seal?: import("./signer.js").AccountKey | undefined;
    /**
     * for account methods: override the client's `sealed`
     */
    sealed?: boolean | undefined;
    /**
     * override the client's `lang` for this request
     */
    lang?: string | undefined;
};
/**
 * Where a session saves its flow: `localStorage` as it is, or an
 *   adapter (IndexedDB...) whose methods may return promises.
 */
export type FlowStorage = {
    getItem: (key: string) => string | null | undefined | Promise<string | null | undefined>;
    setItem: (key: string, value: string) => void | Promise<void>;
    removeItem: (key: string) => void | Promise<void>;
};
export type SessionOptions = {
    /**
     * save the flow here while a code is awaited (default: the client's)
     */
    storage?: FlowStorage | undefined;
    /**
     * default: the client's (`sigit-dvm-flow`)
     */
    storageKey?: string | undefined;
};
export type ResumeOptions = {
    /**
     * default: the client's
     */
    storage?: FlowStorage | undefined;
    /**
     * default: the client's (`sigit-dvm-flow`)
     */
    storageKey?: string | undefined;
    /**
     * a flow saved longer ago is deleted, not resumed (default 3600)
     */
    maxAgeS?: number | undefined;
};
/**
 * What a session saves (JSON): the ephemeral key in hex, so treat
 *   the storage as holding a secret for the flow's duration (docs/protocol.md, "The code email").
 */
export type SavedFlow = {
    v: 1;
    /**
     * the DVM's pubkey
     */
    dvm: string;
    /**
     * the ephemeral secret key, hex
     */
    key: string;
    flow: "signup" | "register" | "login";
    step: "code";
    email: string;
    /**
     * `register`: the account's public key
     */
    pubkey?: string | undefined;
    /**
     * `register`: the account's backup (encrypted under the password)
     */
    backup?: string | undefined;
    /**
     * unix seconds
     */
    savedAt: number;
};
export type AccountStatus = {
    email: string;
    verified: boolean;
    activated: boolean;
    pending_email: string | null;
    grace_s: number | null;
    notifications: {
        login_notice: boolean;
    };
    created_at: number;
};
/**
 * `{entropy}` for a signup; `{}` for a register;
 *   `{entropy, pubkey, backup}` for a login (no entropy for an account made by register).
 */
export type VerifyResult = {
    /**
     * 64 hex
     */
    entropy?: string | undefined;
    /**
     * the account's key (login)
     */
    pubkey?: string | undefined;
    /**
     * the account's encrypted key (login)
     */
    backup?: string | undefined;
};

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
     * the first protocol version it speaks, `sigit-dvm/1`
     */
    protocol: string;
    /**
     * every version it speaks (`sigit-dvm/2`: register, seals)
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
     * per method; docs/protocol.md's defaults otherwise
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
     * speaks sigit-dvm/2); false: signed by the account key, which the relay then shows
     */
    sealed?: boolean | undefined;
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
     * where pow-worker.js is served, if a bundler moved it
     */
    powWorkerUrl?: string | URL | undefined;
    /**
     * a WebSocket class (Node < 22: the `ws` package's)
     */
    WebSocket?: any;
    /**
     * the clock, in unix seconds
     */
    now?: (() => number) | undefined;
};
export type PowProgress = {
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
export type CallOptions = {
    /**
     * cancels mining or waiting (CancelledError)
     */
    signal?: AbortSignal | undefined;
    /**
     * PoW progress, from the worker
     */
    onProgress?: ((progress: PowProgress) => void) | undefined;
    timeoutMs?: number | undefined;
    republishMs?: number | undefined;
    scheme?: "nip44" | "nip04" | undefined;
    /**
     * override the announced minimum (tests)
     */
    powBits?: number | undefined;
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
     * seal the request with this account key (the signing key carries it)
     */
    seal?: Uint8Array<ArrayBufferLike> | undefined;
    /**
     * for account methods: override the client's `sealed`
     */
    sealed?: boolean | undefined;
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

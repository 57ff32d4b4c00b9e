/**
 * End the current task and go on in a new one, so the page can paint and handle input between
 * the client's pieces of main-thread work (key derivation, ECDH, signing: each 5-30 ms, the first
 * key derivation more while noble-curves builds its tables), none of which may add up to a long
 * task. `scheduler.yield` where the browser has it, else a timer.
 * @returns {Promise<void>}
 */
export function nextTask(): Promise<void>;
/**
 * A code as the user typed it, ready to send: spaces removed ("1234 5678 9012 3456"), 6 or 16 digits.
 * Anything else is InputError `code_format` (nothing is sent, no attempt is spent).
 * @param {string | number} code
 * @returns {string}
 */
export function normalizeCode(code: string | number): string;
/**
 * Find a DVM by NIP-05 name (`dvm@example.org`), npub or hex key, read its announcement, and
 * return a client for it. `signal` cancels (CancelledError); the NIP-05 request ends after
 * `fetchTimeoutMs` and each relay's answer after `connectTimeoutMs` (DiscoveryError).
 * @param {string} identifier
 * @param {DiscoverOptions} [opts]
 */
export function discover(identifier: string, opts?: DiscoverOptions): Promise<SigitDvm>;
/** Where a session saves its flow, unless told otherwise. */
export const FLOW_STORAGE_KEY: "sigit-dvm-flow";
export class SigitDvm {
    /** @param {ClientOptions} opts */
    constructor(opts: ClientOptions);
    /** The newest protocol version both sides speak (1, 2 or 3). */
    version: number;
    /** @type {DvmInfo} */
    info: DvmInfo;
    options: {
        timeoutMs: number;
        republishMs: number;
        connectTimeoutMs: number;
        expirationS: number | null;
        scheme: "nip44" | "nip04";
        powWorkers: number;
        maxPowBits: number;
        workerUrl: string | URL | undefined;
        now: () => number;
        sealed: boolean;
        proveKeys: boolean;
        lang: string | undefined;
        /** @type {FlowStorage | undefined} */
        storage: FlowStorage | undefined;
        storageKey: string;
    };
    /** The ephemeral key of each account's pending email change or deletion (sealed mode).
     * @type {Map<string, Uint8Array>} */
    carriers: Map<string, Uint8Array>;
    /** NIP-44 conversation keys with the DVM, by signing key (an ECDH each: done once per key).
     * @type {WeakMap<Uint8Array, Uint8Array>} */
    conversationKeys: WeakMap<Uint8Array, Uint8Array>;
    /** @type {import('./transport.js').Transport} */
    transport: import("./transport.js").Transport;
    /**
     * A new signup or login: a fresh ephemeral key, kept only by the returned object (and, with a
     * `storage`, saved there while a code is awaited, so a reload or the emailed link can resume).
     * @param {SessionOptions} [opts]
     */
    session(opts?: SessionOptions): Session;
    /**
     * The flow a session saved in `storage` (localStorage, or an adapter over IndexedDB) while it
     * waited for a code, or null: nothing saved, saved for another DVM, or older than `maxAgeS`
     * (3600; a stale one is deleted). Use it when the page opens (a reload, the emailed link).
     * @param {ResumeOptions} [opts]
     * @returns {Promise<Session | null>}
     */
    resume(opts?: ResumeOptions): Promise<Session | null>;
    /** Close the client's relay connections (a site's `pool` stays open). */
    close(): void;
    /**
     * Send one request and return its result (`{}` for a success without data; `null` when the DVM
     * sends such successes as an empty content, `service.empty_success_replies`), or throw a
     * ProtocolError carrying the DVM's code. The one machinery every method goes through.
     *
     * A `pow_too_low` asking more bits than were mined is mined again, at `required_bits`, for this
     * request only (sigit-dvm/3: a price while the DVM is under pressure, not a new minimum; a
     * version 2 DVM's figure is kept for the method), at most 3 times and never above `maxPowBits`:
     * past it, the ProtocolError `pow_too_low` carries `details.ceiling`.
     * @param {string} method
     * @param {Record<string, unknown> | undefined} params
     * @param {Uint8Array} secretKey the key that signs (ephemeral, or the account's)
     * @param {CallOptions} [opts]
     * @returns {Promise<Record<string, any> | null>}
     */
    call(method: string, params: Record<string, unknown> | undefined, secretKey: Uint8Array, opts?: CallOptions): Promise<Record<string, any> | null>;
    /**
     * Encrypt, seal (with `opts.seal`), mine and sign a request, without sending it.
     * @param {string} method
     * @param {Record<string, unknown> | undefined} params
     * @param {Uint8Array} secretKey
     * @param {CallOptions} [opts]
     * @returns {Promise<NostrEvent>}
     */
    buildRequest(method: string, params: Record<string, unknown> | undefined, secretKey: Uint8Array, opts?: CallOptions): Promise<NostrEvent>;
    /** @param {Uint8Array} secretKey */
    conversationKey(secretKey: Uint8Array): Uint8Array<ArrayBufferLike>;
    /**
     * The request JSON: `{"method", "params"?, "lang"?}`. `lang` (the user's language, BCP 47) goes
     * only to a DVM that speaks sigit-dvm/3; older ones refuse any other member.
     * @param {string} method @param {Record<string, unknown> | undefined} params @param {CallOptions} opts
     */
    requestJson(method: string, params: Record<string, unknown> | undefined, opts: CallOptions): string;
    /**
     * `{"seal": ...}`: the request signed by the account key (kind 13, bound to this DVM and to
     * the ephemeral key that carries it), docs/protocol.md "Sealed requests".
     * @param {string} request the request JSON
     * @param {Uint8Array} carrierKey the ephemeral key that signs the outer event
     * @param {AccountKey} account the account's secret key or a signer for it
     * @param {number} createdAt
     */
    sealPlaintext(request: string, carrierKey: Uint8Array, account: AccountKey, createdAt: number): Promise<string>;
    /**
     * An account method. Sealed (the default when the DVM serves sigit-dvm/2 or later): a fresh
     * ephemeral key carries the request and the account key (or its signer) only signs the seal
     * inside, so no event on a relay names the account; a confirmation (`confirm_email`,
     * `delete_account`, `resend_code`) reuses the key of the change or deletion it confirms. With
     * `sealed: false` the account's secret key signs the event itself (what version 1 DVMs need;
     * the relay then shows the npub; a signer cannot do this).
     * @param {string} method @param {Record<string, unknown> | undefined} params
     * @param {AccountKey} account @param {CallOptions} [opts]
     */
    accountCall(method: string, params: Record<string, unknown> | undefined, account: AccountKey, opts?: CallOptions): Promise<Record<string, any> | null>;
    /**
     * Publish a signed request to every relay, wait for the DVM's reply on all of them, republish
     * the same event every `republishMs` until `timeoutMs`.
     * @param {NostrEvent} event
     * @param {string} method
     * @param {Uint8Array} secretKey to decrypt the reply (and answer NIP-42 AUTH)
     * @param {CallOptions} [opts]
     * @returns {Promise<Record<string, any> | null>}
     */
    send(event: NostrEvent, method: string, secretKey: Uint8Array, opts?: CallOptions): Promise<Record<string, any> | null>;
    /** @param {NostrEvent} candidate @param {NostrEvent} request */
    isReplyTo(candidate: NostrEvent, request: NostrEvent): boolean;
    /**
     * @param {NostrEvent} reply @param {string} method @param {Uint8Array} secretKey
     * @returns {Record<string, any> | null}
     */
    openReply(reply: NostrEvent, method: string, secretKey: Uint8Array): Record<string, any> | null;
    /** @param {AccountKey} account @param {CallOptions} [opts] */
    status(account: AccountKey, opts?: CallOptions): Promise<import("./types.js").AccountStatus>;
    /** @param {AccountKey} account @param {string} email @param {CallOptions} [opts] */
    changeEmail(account: AccountKey, email: string, opts?: CallOptions): Promise<void>;
    /** @param {AccountKey} account @param {string} code 6 or 16 digits (spaces ignored) @param {CallOptions} [opts] */
    confirmEmail(account: AccountKey, code: string, opts?: CallOptions): Promise<{
        email: string;
    }>;
    /** @param {AccountKey} account @param {string} backup @param {CallOptions} [opts] */
    updateBackup(account: AccountKey, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * The password change: a new backup of the same key under the new password and the account's
     * entropy (in the worker), stored with update_backup. Needs the secret key itself.
     * @param {Uint8Array} accountKey @param {string} newPassword @param {string | undefined} entropy ("" or absent: a register account)
     * @param {CallOptions & {logN?: number}} [opts]
     */
    changePassword(accountKey: Uint8Array, newPassword: string, entropy: string | undefined, opts?: CallOptions & {
        logN?: number;
    }): Promise<string>;
    /** @param {AccountKey} account @param {{loginNotice: boolean}} prefs @param {CallOptions} [opts] */
    setNotifications(account: AccountKey, prefs: {
        loginNotice: boolean;
    }, opts?: CallOptions): Promise<{
        notifications: {
            login_notice: boolean;
        };
    }>;
    /** @param {AccountKey} account @param {CallOptions} [opts] */
    requestDeletion(account: AccountKey, opts?: CallOptions): Promise<void>;
    /** @param {AccountKey} account @param {string} code 6 or 16 digits (spaces ignored) @param {CallOptions} [opts] */
    deleteAccount(account: AccountKey, code: string, opts?: CallOptions): Promise<void>;
    /** A new code for the account's pending email change or deletion.
     * @param {AccountKey} account @param {CallOptions} [opts] */
    resendCode(account: AccountKey, opts?: CallOptions): Promise<void>;
    /**
     * sigit-dvm/3: every OTHER session of the account (a login on another device, a session a
     * stranger may hold) loses its right to act for it.
     * @param {AccountKey} account @param {CallOptions} [opts]
     */
    revokeSessions(account: AccountKey, opts?: CallOptions): Promise<void>;
}
/**
 * A signup or login on one device: the ephemeral key signs every step. With a `storage`, the
 * flow (key, kind, address, and for `register` the account's public key and encrypted backup)
 * is saved there from the moment a code is asked for until the code is accepted, so that a
 * reload or the emailed link (docs/protocol.md, "The code email") can resume it.
 */
export class Session {
    /** @param {SigitDvm} dvm @param {SessionOptions} [opts] @param {SavedFlow} [saved] */
    constructor(dvm: SigitDvm, opts?: SessionOptions, saved?: SavedFlow);
    dvm: SigitDvm;
    /** @type {FlowStorage | null} */
    storage: FlowStorage | null;
    storageKey: string;
    /** @type {Uint8Array | null} */
    key: Uint8Array | null;
    /** The ephemeral public key (hex). */
    pubkey: string;
    /** What this session does: `signup` (request_account), `register`, `login`; null before. @type {'signup' | 'register' | 'login' | null} */
    flow: "signup" | "register" | "login" | null;
    /** `start`, `code` (a code is awaited), `verified` (the code matched), `done` (activated). @type {'start' | 'code' | 'verified' | 'done'} */
    step: "start" | "code" | "verified" | "done";
    /** The address the code went to. */
    email: string;
    /** `register`: the account's public key and its backup (encrypted), to open after the code. @type {string | undefined} */
    accountPubkey: string | undefined;
    /** @type {string | undefined} */
    backup: string | undefined;
    /** Whether this session came from storage (`dvm.resume`). */
    resumed: boolean;
    /** The last verify_code result, kept so a wrong password can be retried (`unlock`). @type {VerifyResult | null} */
    verified: VerifyResult | null;
    /** Whether the flow is in the storage now (false also when the storage refused to keep it:
     * a full or forbidden storage never stops a flow, but then only typing the code works). */
    saved: boolean;
    /** @returns {Uint8Array} */
    get secretKey(): Uint8Array;
    /** @param {string} email @param {CallOptions} [opts] */
    requestAccount(email: string, opts?: CallOptions): Promise<void>;
    /** @param {string} email @param {CallOptions} [opts] */
    requestLogin(email: string, opts?: CallOptions): Promise<void>;
    /**
     * SIGit's current one-event signup: the account key and its backup with the address; the
     * emailed code (`verifyCode`, which then resolves to `{}`) activates the account. Against a
     * sigit-dvm/3 DVM the request is sealed by the account key (`proveKeys`), so pass the key or a
     * signer; a bare public key (hex) is sent unsealed and only older DVMs take it.
     * @param {AccountKey | string} account @param {string} email
     * @param {string} backup @param {CallOptions} [opts]
     */
    register(account: AccountKey | string, email: string, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * `register` in one call: a new account key, its backup under the password alone (no entropy
     * in this flow, scrypt in the worker), then register. Returns the key; `verifyCode` finishes.
     * @param {string} email @param {string} password @param {CallOptions & {logN?: number}} [opts]
     */
    signUp(email: string, password: string, opts?: CallOptions & {
        logN?: number;
    }): Promise<{
        secretKey: Uint8Array<ArrayBufferLike>;
        pubkey: string;
        backup: string;
    }>;
    /**
     * Signup: `{entropy}`. Register: `{}`. Login: `{entropy, pubkey, backup}` (no `entropy` for an
     * account made by `register`). (Private mode: look at the shape.) The code is 6 or 16 digits;
     * spaces are ignored. The result stays in `session.verified` (see `unlock`); the saved flow is
     * deleted: the code is spent.
     * @param {string} code @param {CallOptions} [opts]
     * @returns {Promise<VerifyResult>}
     */
    verifyCode(code: string, opts?: CallOptions): Promise<VerifyResult>;
    /**
     * Open the account's backup with the password, after `verifyCode`: a login's backup, or a
     * `register` flow's own (kept by the session). A wrong password is BackupError
     * `wrong_password` and changes nothing: ask again and call `unlock` again (no new code).
     * @param {string} password @param {{signal?: AbortSignal, onProgress?: (p: import('./types.js').BackupProgress) => void}} [opts]
     * @returns {Promise<Uint8Array>} the account's secret key
     */
    unlock(password: string, opts?: {
        signal?: AbortSignal;
        onProgress?: (p: import("./types.js").BackupProgress) => void;
    }): Promise<Uint8Array>;
    /**
     * Store the account's real public key and encrypted backup, from this verified signup session.
     * Against a sigit-dvm/3 DVM the request is sealed by the account key (`proveKeys`).
     * @param {AccountKey | string} account the account's key or signer (or, unsealed, its public key in hex)
     * @param {string} backup @param {CallOptions} [opts]
     */
    activate(account: AccountKey | string, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * The usual activation in one call: a new account key, its backup under password + entropy
     * (scrypt in the worker), then activate. Returns the key: the caller keeps or forgets it.
     * @param {string} password @param {string | undefined} [entropy] default: from `verifyCode`
     * @param {CallOptions & {logN?: number}} [opts]
     */
    createAccount(password: string, entropy?: string | undefined, opts?: CallOptions & {
        logN?: number;
    }): Promise<{
        secretKey: Uint8Array<ArrayBufferLike>;
        pubkey: string;
        backup: string;
    }>;
    /** @param {CallOptions} [opts] */
    resendCode(opts?: CallOptions): Promise<void>;
    /**
     * An account method from this session's key, with no account key: allowed for
     * `account_session_s` after its login or register code matched (or it activated).
     * @param {string} method @param {Record<string, unknown>} [params] @param {CallOptions} [opts]
     */
    account(method: string, params?: Record<string, unknown>, opts?: CallOptions): Promise<Record<string, any> | null>;
    /**
     * Save the flow to the storage (done by every step that asks for a code; call it yourself only
     * to save elsewhere). Only while a code is awaited: nothing else is worth resuming.
     */
    save(): Promise<void>;
    /** Delete the saved flow if it is this session's (another tab may have saved its own since). */
    forget(): Promise<void>;
    /** End the flow: the saved copy is deleted and the ephemeral key zeroed. */
    close(): Promise<void>;
    /** @param {'signup' | 'register' | 'login'} flow @param {string} email @param {string} [pubkey] @param {string} [backup] */
    begin(flow: "signup" | "register" | "login", email: string, pubkey?: string, backup?: string): Promise<void>;
    /**
     * A request that opens the flow: refused (the DVM decided: no code was mailed), the saved flow
     * is dropped; lost (timeout, relays), it is kept for the code email that may still come.
     * @param {string} method @param {Record<string, unknown>} params @param {CallOptions} [opts]
     */
    opening(method: string, params: Record<string, unknown>, opts?: CallOptions): Promise<void>;
    /** @param {AccountKey | string} account @returns {Promise<{pubkey: string, seal: AccountKey | undefined}>} */
    prove(account: AccountKey | string): Promise<{
        pubkey: string;
        seal: AccountKey | undefined;
    }>;
    /** @param {Uint8Array} secretKey @param {string} password @param {string | undefined} entropy @param {CallOptions & {logN?: number}} opts */
    backupOf(secretKey: Uint8Array, password: string, entropy: string | undefined, opts: CallOptions & {
        logN?: number;
    }): Promise<string>;
}
export type NostrEvent = import("./relay.js").NostrEvent;
export type CallOptions = import("./types.js").CallOptions;
export type ClientOptions = import("./types.js").ClientOptions;
export type DiscoverOptions = import("./types.js").DiscoverOptions;
export type DvmInfo = import("./types.js").DvmInfo;
export type AccountStatus = import("./types.js").AccountStatus;
export type VerifyResult = import("./types.js").VerifyResult;
export type SessionOptions = import("./types.js").SessionOptions;
export type ResumeOptions = import("./types.js").ResumeOptions;
export type SavedFlow = import("./types.js").SavedFlow;
export type FlowStorage = import("./types.js").FlowStorage;
export type AccountKey = import("./signer.js").AccountKey;

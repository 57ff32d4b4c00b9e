/**
 * Find a DVM by NIP-05 name (`dvm@example.org`), npub or hex key, read its announcement, and
 * return a client for it.
 * @param {string} identifier
 * @param {Partial<ClientOptions> & {fetch?: typeof fetch, allowHttp?: boolean}} [opts]
 */
export function discover(identifier: string, opts?: Partial<ClientOptions> & {
    fetch?: typeof fetch;
    allowHttp?: boolean;
}): Promise<SigitDvm>;
export class SigitDvm {
    /** @param {ClientOptions} opts */
    constructor(opts: ClientOptions);
    /** @type {DvmInfo} */
    info: DvmInfo;
    options: {
        timeoutMs: number;
        republishMs: number;
        connectTimeoutMs: number;
        expirationS: number | null;
        scheme: "nip44" | "nip04";
        powWorkers: number;
        powWorkerUrl: string | URL | undefined;
        now: () => number;
        sealed: boolean;
    };
    /** The ephemeral key of each account's pending email change or deletion (sealed mode).
     * @type {Map<string, Uint8Array>} */
    carriers: Map<string, Uint8Array>;
    /** @type {Map<string, RelayConnection>} */
    relays: Map<string, RelayConnection>;
    /** A new signup or login session: a fresh ephemeral key, kept only by the returned object. */
    session(): Session;
    /** Close every relay connection. */
    close(): void;
    /**
     * Send one request and return its result (`{}` for a success without data; `null` when the DVM
     * sends such successes as an empty content, `service.empty_success_replies`), or throw a
     * ProtocolError carrying the DVM's code. The one machinery every method goes through.
     * @param {string} method
     * @param {Record<string, unknown> | undefined} params
     * @param {Uint8Array} secretKey the key that signs (ephemeral, or the account's)
     * @param {CallOptions} [opts]
     * @returns {Promise<Record<string, any> | null>}
     */
    call(method: string, params: Record<string, unknown> | undefined, secretKey: Uint8Array, opts?: CallOptions): Promise<Record<string, any> | null>;
    /**
     * Encrypt, mine and sign a request (without sending it).
     * @param {string} method
     * @param {Record<string, unknown> | undefined} params
     * @param {Uint8Array} secretKey
     * @param {CallOptions} [opts]
     * @returns {Promise<NostrEvent>}
     */
    buildRequest(method: string, params: Record<string, unknown> | undefined, secretKey: Uint8Array, opts?: CallOptions): Promise<NostrEvent>;
    /**
     * `{"seal": ...}`: the request signed by the account key (kind 13, bound to this DVM and to
     * the ephemeral key that carries it), docs/protocol.md "Sealed requests".
     * @param {string} request the request JSON
     * @param {Uint8Array} carrierKey the ephemeral key that signs the outer event
     * @param {Uint8Array} accountKey
     * @param {number} createdAt
     */
    sealPlaintext(request: string, carrierKey: Uint8Array, accountKey: Uint8Array, createdAt: number): string;
    /**
     * An account method. Sealed (the default when the DVM serves sigit-dvm/2): a fresh ephemeral
     * key carries the request and the account key only signs the seal inside, so no event on a
     * relay names the account; a confirmation (`confirm_email`, `delete_account`, `resend_code`)
     * reuses the key of the change or deletion it confirms. With `sealed: false` the account key
     * signs the event itself (what version 1 DVMs need; the relay then shows the npub).
     * @param {string} method @param {Record<string, unknown> | undefined} params
     * @param {Uint8Array} accountKey @param {CallOptions} [opts]
     */
    accountCall(method: string, params: Record<string, unknown> | undefined, accountKey: Uint8Array, opts?: CallOptions): Promise<Record<string, any> | null>;
    /**
     * Publish a signed request to every relay, wait for the DVM's reply on all of them, republish
     * the same event every `republishMs` until `timeoutMs`.
     * @param {NostrEvent} event
     * @param {string} method
     * @param {Uint8Array} secretKey to decrypt the reply
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
    /** @param {Uint8Array} accountKey @param {CallOptions} [opts] */
    status(accountKey: Uint8Array, opts?: CallOptions): Promise<AccountStatus>;
    /** @param {Uint8Array} accountKey @param {string} email @param {CallOptions} [opts] */
    changeEmail(accountKey: Uint8Array, email: string, opts?: CallOptions): Promise<void>;
    /** @param {Uint8Array} accountKey @param {string} code @param {CallOptions} [opts] */
    confirmEmail(accountKey: Uint8Array, code: string, opts?: CallOptions): Promise<{
        email: string;
    }>;
    /** @param {Uint8Array} accountKey @param {string} backup @param {CallOptions} [opts] */
    updateBackup(accountKey: Uint8Array, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * The password change: a new backup of the same key under the new password and the account's
     * entropy, stored with update_backup.
     * @param {Uint8Array} accountKey @param {string} newPassword @param {string | undefined} entropy ("" or absent: a register account)
     * @param {CallOptions & {logN?: number}} [opts]
     */
    changePassword(accountKey: Uint8Array, newPassword: string, entropy: string | undefined, opts?: CallOptions & {
        logN?: number;
    }): Promise<string>;
    /** @param {Uint8Array} accountKey @param {{loginNotice: boolean}} prefs @param {CallOptions} [opts] */
    setNotifications(accountKey: Uint8Array, prefs: {
        loginNotice: boolean;
    }, opts?: CallOptions): Promise<{
        notifications: {
            login_notice: boolean;
        };
    }>;
    /** @param {Uint8Array} accountKey @param {CallOptions} [opts] */
    requestDeletion(accountKey: Uint8Array, opts?: CallOptions): Promise<void>;
    /** @param {Uint8Array} accountKey @param {string} code @param {CallOptions} [opts] */
    deleteAccount(accountKey: Uint8Array, code: string, opts?: CallOptions): Promise<void>;
    /** A new code for the account key's pending email change or deletion.
     * @param {Uint8Array} accountKey @param {CallOptions} [opts] */
    resendCode(accountKey: Uint8Array, opts?: CallOptions): Promise<void>;
}
/** A signup or login on one device: the ephemeral key signs every step. */
export class Session {
    /** @param {SigitDvm} dvm */
    constructor(dvm: SigitDvm);
    dvm: SigitDvm;
    /** @type {Uint8Array | null} */
    key: Uint8Array | null;
    /** The ephemeral public key (hex). */
    pubkey: string;
    /** @returns {Uint8Array} */
    get secretKey(): Uint8Array;
    /** @param {string} email @param {CallOptions} [opts] */
    requestAccount(email: string, opts?: CallOptions): Promise<void>;
    /** @param {string} email @param {CallOptions} [opts] */
    requestLogin(email: string, opts?: CallOptions): Promise<void>;
    /**
     * Signup: `{entropy}`. Register: `{}`. Login: `{entropy, pubkey, backup}` (no `entropy` for an
     * account made by `register`). (Private mode: look at the shape.)
     * @param {string} code @param {CallOptions} [opts]
     */
    verifyCode(code: string, opts?: CallOptions): Promise<VerifyResult>;
    /** @param {string} pubkey the account's real public key (hex) @param {string} backup @param {CallOptions} [opts] */
    activate(pubkey: string, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * The usual activation in one call: a new account key, its backup under password + entropy,
     * then activate. Returns the key: the caller keeps or forgets it.
     * @param {string} password @param {string | undefined} entropy @param {CallOptions & {logN?: number}} [opts]
     */
    createAccount(password: string, entropy: string | undefined, opts?: CallOptions & {
        logN?: number;
    }): Promise<{
        secretKey: Uint8Array<ArrayBufferLike>;
        pubkey: string;
        backup: string;
    }>;
    /** @param {CallOptions} [opts] */
    resendCode(opts?: CallOptions): Promise<void>;
    /**
     * SIGit's current one-event signup: the account key and its backup with the address; the
     * emailed code (`verifyCode`, which then resolves to `{}`) activates the account.
     * @param {string} pubkey the account's real public key (hex) @param {string} email
     * @param {string} backup @param {CallOptions} [opts]
     */
    register(pubkey: string, email: string, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * `register` in one call: a new account key, its backup under the password alone (no
     * entropy in this flow), then register. Returns the key; `verifyCode` finishes the signup.
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
     * An account method from this session's key, with no account key: allowed for
     * `account_session_s` after its login or register code matched (or it activated).
     * @param {string} method @param {Record<string, unknown>} [params] @param {CallOptions} [opts]
     */
    account(method: string, params?: Record<string, unknown>, opts?: CallOptions): Promise<Record<string, any> | null>;
    /** Forget the ephemeral key (zeroed). */
    close(): void;
}
export type NostrEvent = import("./relay.js").NostrEvent;
export type CallOptions = import("./types.js").CallOptions;
export type ClientOptions = import("./types.js").ClientOptions;
export type DvmInfo = import("./types.js").DvmInfo;
export type AccountStatus = import("./types.js").AccountStatus;
export type VerifyResult = import("./types.js").VerifyResult;
import { RelayConnection } from './relay.js';

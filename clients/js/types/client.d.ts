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
    };
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
     * @param {Uint8Array} accountKey @param {string} newPassword @param {string} entropy
     * @param {CallOptions & {logN?: number}} [opts]
     */
    changePassword(accountKey: Uint8Array, newPassword: string, entropy: string, opts?: CallOptions & {
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
     * Signup: `{entropy}`. Login: `{entropy, pubkey, backup}`. (Private mode: look at the shape.)
     * @param {string} code @param {CallOptions} [opts]
     */
    verifyCode(code: string, opts?: CallOptions): Promise<VerifyResult>;
    /** @param {string} pubkey the account's real public key (hex) @param {string} backup @param {CallOptions} [opts] */
    activate(pubkey: string, backup: string, opts?: CallOptions): Promise<void>;
    /**
     * The usual activation in one call: a new account key, its backup under password + entropy,
     * then activate. Returns the key: the caller keeps or forgets it.
     * @param {string} password @param {string} entropy @param {CallOptions & {logN?: number}} [opts]
     */
    createAccount(password: string, entropy: string, opts?: CallOptions & {
        logN?: number;
    }): Promise<{
        secretKey: Uint8Array<ArrayBufferLike>;
        pubkey: string;
        backup: string;
    }>;
    /** @param {CallOptions} [opts] */
    resendCode(opts?: CallOptions): Promise<void>;
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

/**
 * The newest version both sides speak (1, 2, 3), or 0 for none.
 * @param {readonly string[]} protocols what the DVM announced
 */
export function commonVersion(protocols: readonly string[]): number;
/**
 * Resolve `name@domain` (NIP-05) or an npub / hex key to a pubkey and relay hints. The HTTP
 * request ends after `fetchTimeoutMs` (10000) or when `signal` fires (CancelledError).
 * @param {string} identifier
 * @param {{fetch?: typeof fetch, allowHttp?: boolean, fetchTimeoutMs?: number, signal?: AbortSignal}} [opts]
 * @returns {Promise<{pubkey: string, relays: string[]}>}
 */
export function resolveIdentifier(identifier: string, opts?: {
    fetch?: typeof fetch;
    allowHttp?: boolean;
    fetchTimeoutMs?: number;
    signal?: AbortSignal;
}): Promise<{
    pubkey: string;
    relays: string[];
}>;
/**
 * Fetch the newest valid announcement of `pubkey` from `relays` (or through the site's `pool`):
 * every relay is asked, and each one's answer ends at its EOSE, the timeout (`timeoutMs`, 5000),
 * a failed connection, or `signal` (then CancelledError).
 * @param {string} pubkey
 * @param {string[]} relays
 * @param {{WebSocket?: any, timeoutMs?: number, signal?: AbortSignal, pool?: import('./transport.js').RelayPool}} [opts]
 * @returns {Promise<import('./relay.js').NostrEvent | null>}
 */
export function fetchAnnouncement(pubkey: string, relays: string[], opts?: {
    WebSocket?: any;
    timeoutMs?: number;
    signal?: AbortSignal;
    pool?: import("./transport.js").RelayPool;
}): Promise<import("./relay.js").NostrEvent | null>;
/**
 * Read an announcement's content into the client's settings.
 * @param {import('./relay.js').NostrEvent} event
 */
export function parseAnnouncement(event: import("./relay.js").NostrEvent): {
    pubkey: string;
    name: any;
    about: any;
    protocol: any;
    protocols: any;
    requestKind: number;
    replyKind: any;
    encryption: any;
    powBits: Record<string, number>;
    createdAtWindowS: any;
};
export const ANNOUNCEMENT_KIND: 31990;
export const ANNOUNCEMENT_D: "sigit-dvm";
/** The newest version this client speaks. */
export const PROTOCOL: "sigit-dvm/3";
/** Every version this client speaks: 2 adds `register`, seals and session calls; 3 seals
 * `register` and `activate` with the key they name, codes of 16 digits, prices in PoW,
 * `revoke_sessions` and `lang`. */
export const PROTOCOLS: readonly string[];
export const DEFAULT_REQUEST_KIND: 5780;
/** The daemon's default minimums (docs/protocol.md, "Proof of work"; a test compares them with
 * the daemon's announcement), used for any method the announcement does not list. */
export const DEFAULT_POW_BITS: Readonly<{
    request_account: 16;
    register: 16;
    request_login: 16;
    verify_code: 12;
    activate: 12;
    resend_code: 12;
    status: 12;
    change_email: 12;
    confirm_email: 12;
    update_backup: 12;
    set_notifications: 12;
    request_deletion: 12;
    delete_account: 12;
    revoke_sessions: 12;
}>;

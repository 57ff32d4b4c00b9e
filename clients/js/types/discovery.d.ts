/**
 * Resolve `name@domain` (NIP-05) or an npub / hex key to a pubkey and relay hints.
 * @param {string} identifier
 * @param {{fetch?: typeof fetch, allowHttp?: boolean}} [opts]
 * @returns {Promise<{pubkey: string, relays: string[]}>}
 */
export function resolveIdentifier(identifier: string, opts?: {
    fetch?: typeof fetch;
    allowHttp?: boolean;
}): Promise<{
    pubkey: string;
    relays: string[];
}>;
/**
 * Fetch the newest valid announcement of `pubkey` from `relays`: every relay is asked, and each
 * one's answer ends at its EOSE (or the timeout, or a failed connection).
 * @param {string} pubkey
 * @param {string[]} relays
 * @param {{WebSocket?: any, timeoutMs?: number}} [opts]
 * @returns {Promise<import('./relay.js').NostrEvent | null>}
 */
export function fetchAnnouncement(pubkey: string, relays: string[], opts?: {
    WebSocket?: any;
    timeoutMs?: number;
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
export const PROTOCOL: "sigit-dvm/1";
/** Every version this client speaks; version 2 adds `register`, seals and session calls. */
export const PROTOCOLS: string[];
export const DEFAULT_REQUEST_KIND: 5780;
/** docs/protocol.md's default minimums, used until an announcement says otherwise. */
export const DEFAULT_POW_BITS: Readonly<{
    request_account: 16;
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
}>;

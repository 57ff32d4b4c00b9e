/**
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 * @typedef {{kind: number, created_at: number, tags: string[][], content: string}} EventTemplate
 * @typedef {object} Signer NIP-07's interface (also nostr-tools' BunkerSigner for NIP-46)
 * @property {() => string | Promise<string>} getPublicKey the account's public key, hex
 * @property {(template: EventTemplate) => NostrEvent | Promise<NostrEvent>} signEvent
 * @typedef {Uint8Array | Signer} AccountKey the account's secret key (32 bytes), or a signer for it
 */
/**
 * A signer for a secret key (kept by the returned object only while it is used).
 * @param {Uint8Array} secretKey
 * @returns {Signer}
 */
export function keySigner(secretKey: Uint8Array): Signer;
/** @param {AccountKey} key @returns {Signer} */
export function asSigner(key: AccountKey): Signer;
/** The account's public key from a key or signer. @param {AccountKey} key @returns {Promise<string>} */
export function publicKeyOf(key: AccountKey): Promise<string>;
/**
 * Sign `template` with `key`; the result must be that template, validly signed by `pubkey`.
 * @param {AccountKey} key @param {EventTemplate} template @param {string} pubkey
 * @returns {Promise<NostrEvent>}
 */
export function signAs(key: AccountKey, template: EventTemplate, pubkey: string): Promise<NostrEvent>;
export type NostrEvent = import("./relay.js").NostrEvent;
export type EventTemplate = {
    kind: number;
    created_at: number;
    tags: string[][];
    content: string;
};
/**
 * NIP-07's interface (also nostr-tools' BunkerSigner for NIP-46)
 */
export type Signer = {
    /**
     * the account's public key, hex
     */
    getPublicKey: () => string | Promise<string>;
    signEvent: (template: EventTemplate) => NostrEvent | Promise<NostrEvent>;
};
/**
 * the account's secret key (32 bytes), or a signer for it
 */
export type AccountKey = Uint8Array | Signer;

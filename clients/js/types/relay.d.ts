/**
 * @typedef {{id: string, pubkey: string, created_at: number, kind: number, tags: string[][], content: string, sig: string}} NostrEvent
 * @typedef {{ok: boolean, message: string}} PublishResult
 * @typedef {(challenge: string, relayUrl: string) => NostrEvent} AuthSigner
 */
export class RelayConnection {
    /**
     * @param {string} url
     * @param {{WebSocket?: any, connectTimeoutMs?: number}} [opts]
     */
    constructor(url: string, opts?: {
        WebSocket?: any;
        connectTimeoutMs?: number;
    });
    url: string;
    WebSocket: any;
    connectTimeoutMs: number;
    /** @type {any} */
    ws: any;
    /** @type {Promise<void> | null} */
    opening: Promise<void> | null;
    /** @type {string | null} */
    challenge: string | null;
    /** @type {Map<string, (r: PublishResult) => void>} */
    pendingOk: Map<string, (r: PublishResult) => void>;
    /** @type {Map<string, {onEvent: (e: NostrEvent) => void, onClosed?: (m: string) => void, onEose?: () => void}>} */
    subs: Map<string, {
        onEvent: (e: NostrEvent) => void;
        onClosed?: (m: string) => void;
        onEose?: () => void;
    }>;
    nextSub: number;
    get connected(): boolean;
    /** Open the socket (once; again after it closed). @returns {Promise<void>} */
    connect(): Promise<void>;
    /** @param {string} raw */
    onMessage(raw: string): void;
    /** @param {unknown[]} message */
    send(message: unknown[]): void;
    /**
     * Send an event and wait for the relay's OK. A relay that answers `auth-required:` gets a NIP-42
     * AUTH event from `auth` (when given) and the event once more.
     * @param {NostrEvent} event
     * @param {{timeoutMs?: number, auth?: AuthSigner}} [opts]
     * @returns {Promise<PublishResult>}
     */
    publish(event: NostrEvent, opts?: {
        timeoutMs?: number;
        auth?: AuthSigner;
    }): Promise<PublishResult>;
    /**
     * @param {unknown[]} message @param {string} id @param {number} timeoutMs
     * @returns {Promise<PublishResult>}
     */
    sendAndWaitOk(message: unknown[], id: string, timeoutMs: number): Promise<PublishResult>;
    /**
     * Subscribe; returns a function that closes the subscription.
     * @param {Record<string, unknown>[]} filters
     * @param {(e: NostrEvent) => void} onEvent
     * @param {(message: string) => void} [onClosed]
     * @param {() => void} [onEose] the relay sent everything it had stored
     * @returns {Promise<() => void>}
     */
    subscribe(filters: Record<string, unknown>[], onEvent: (e: NostrEvent) => void, onClosed?: (message: string) => void, onEose?: () => void): Promise<() => void>;
    close(): void;
}
export type NostrEvent = {
    id: string;
    pubkey: string;
    created_at: number;
    kind: number;
    tags: string[][];
    content: string;
    sig: string;
};
export type PublishResult = {
    ok: boolean;
    message: string;
};
export type AuthSigner = (challenge: string, relayUrl: string) => NostrEvent;

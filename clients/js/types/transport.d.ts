/**
 * The client's own connections, one per relay, kept open between requests.
 * @implements {Transport}
 */
export class OwnRelays implements Transport {
    /** @param {string[]} relays @param {{WebSocket?: any, connectTimeoutMs?: number}} [opts] */
    constructor(relays: string[], opts?: {
        WebSocket?: any;
        connectTimeoutMs?: number;
    });
    relays: string[];
    /** @type {RelayConnection[]} */
    conns: RelayConnection[];
    /** @param {Record<string, unknown>} filter @param {(e: NostrEvent) => void} onEvent @returns {Watch} */
    watch(filter: Record<string, unknown>, onEvent: (e: NostrEvent) => void): Watch;
    /** @param {NostrEvent} event @param {PublishOptions} opts */
    publish(event: NostrEvent, opts: PublishOptions): Promise<{
        ok: boolean;
        message: string;
        url: string;
    }[]>;
    /** @param {Record<string, unknown>} filter @param {{timeoutMs: number, signal?: AbortSignal}} opts */
    query(filter: Record<string, unknown>, opts: {
        timeoutMs: number;
        signal?: AbortSignal;
    }): Promise<import("./relay.js").NostrEvent[]>;
    close(): void;
}
/**
 * The site's pool: subscriptions and publications go through it; closing the client leaves it open.
 * @implements {Transport}
 */
export class PoolRelays implements Transport {
    /** @param {RelayPool} pool @param {string[]} relays */
    constructor(pool: RelayPool, relays: string[]);
    pool: RelayPool;
    relays: string[];
    /** @param {Record<string, unknown>} filter @param {(e: NostrEvent) => void} onEvent @returns {Watch} */
    watch(filter: Record<string, unknown>, onEvent: (e: NostrEvent) => void): Watch;
    /** @param {NostrEvent} event @param {PublishOptions} opts */
    publish(event: NostrEvent, opts: PublishOptions): Promise<{
        url: string;
        ok: boolean;
        message: string;
    }[]>;
    /** @param {Record<string, unknown>} filter @param {{timeoutMs: number, signal?: AbortSignal}} opts */
    query(filter: Record<string, unknown>, opts: {
        timeoutMs: number;
        signal?: AbortSignal;
    }): Promise<any>;
    close(): void;
}
export type NostrEvent = import("./relay.js").NostrEvent;
export type RelayAnswer = {
    url: string;
    ok: boolean;
    message: string;
};
export type AuthSign = (template: {
    kind: number;
    created_at: number;
    tags: string[][];
    content: string;
}) => NostrEvent;
export type Watch = {
    refresh: () => Promise<RelayAnswer[]>;
    close: () => void;
};
export type PublishOptions = {
    timeoutMs: number;
    auth: AuthSign;
    signal?: AbortSignal;
    only?: string[];
};
export type Transport = {
    relays: string[];
    /**
     * subscribe on every relay (again, at each `refresh`, where a connection dropped)
     */
    watch: (filter: Record<string, unknown>, onEvent: (e: NostrEvent) => void) => Watch;
    /**
     * to every relay, or to those in `only`
     */
    publish: (event: NostrEvent, opts: PublishOptions) => Promise<RelayAnswer[]>;
    /**
     * stored events, each relay's answer ending at its EOSE or the timeout
     */
    query: (filter: Record<string, unknown>, opts: {
        timeoutMs: number;
        signal?: AbortSignal;
    }) => Promise<NostrEvent[]>;
    close: () => void;
};
/**
 * What the client uses of nostr-tools' SimplePool (>= 2.25)
 */
export type RelayPool = {
    subscribe: (relays: string[], filter: any, params: {
        onevent?: (e: any) => void;
        oneose?: () => void;
        onclose?: (reasons: any) => void;
        maxWait?: number;
    }) => {
        close: (reason?: string) => void;
    };
    publish: (relays: string[], event: any, params?: {
        onauth?: (template: any) => Promise<any>;
        maxWait?: number;
        abort?: AbortSignal;
    }) => Promise<string>[];
};
import { RelayConnection } from './relay.js';

/**
 * @typedef {import('./types.js').PowProgress} PowProgress
 * @typedef {{signal?: AbortSignal, onProgress?: (p: PowProgress) => void, workers?: number, inline?: boolean, workerUrl?: string | URL}} MineOptions
 */
/**
 * Mine `template` (an unsigned event without a nonce tag) to `bits`; return its tags with
 * `["nonce", <counter>, <bits>]` appended, and the id.
 * @param {{pubkey: string, created_at: number, kind: number, tags: string[][], content: string}} template
 * @param {number} bits
 * @param {MineOptions} [opts]
 * @returns {Promise<{tags: string[][], id: string, tries: number}>}
 */
export function minePow(template: {
    pubkey: string;
    created_at: number;
    kind: number;
    tags: string[][];
    content: string;
}, bits: number, opts?: MineOptions): Promise<{
    tags: string[][];
    id: string;
    tries: number;
}>;
export type PowProgress = import("./types.js").PowProgress;
export type MineOptions = {
    signal?: AbortSignal;
    onProgress?: (p: PowProgress) => void;
    workers?: number;
    inline?: boolean;
    workerUrl?: string | URL;
};

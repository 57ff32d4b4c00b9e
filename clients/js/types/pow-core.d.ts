/**
 * SHA-256 of `buf[0..len)`, starting from `mid` (the state after `skip` whole blocks, or the IV).
 * @param {Uint8Array} buf
 * @param {number} len
 * @param {Uint32Array} mid
 * @param {number} skip bytes already absorbed into `mid` (a multiple of 64)
 * @param {Uint32Array} H out: the digest as eight big-endian words
 */
export function sha256From(buf: Uint8Array, len: number, mid: Uint32Array, skip: number, H: Uint32Array): void;
/**
 * The SHA-256 digest of `bytes`, as lower-case hex (for tests).
 * @param {Uint8Array} bytes @returns {string}
 */
export function sha256Hex(bytes: Uint8Array): string;
/**
 * Leading zero bits of a digest given as eight words.
 * @param {Uint32Array} H @returns {number}
 */
export function leadingZeroBits(H: Uint32Array): number;
/**
 * Find a nonce that gives the serialized event at least `bits` leading zero bits.
 *
 * `serialized` is the NIP-01 serialization `[0,pubkey,created_at,kind,tags,content]` with
 * NONCE_MARK where the nonce counter goes; nothing else in it changes while mining (the
 * `created_at` stays fixed). Calls `progress(tries)` every `every` tries.
 * @param {string} serialized
 * @param {number} bits
 * @param {{start?: number, step?: number, every?: number, progress?: (tries: number) => void}} [opts]
 * @returns {{nonce: string, tries: number, id: string}}
 */
export function mine(serialized: string, bits: number, opts?: {
    start?: number;
    step?: number;
    every?: number;
    progress?: (tries: number) => void;
}): {
    nonce: string;
    tries: number;
    id: string;
};
export const NONCE_MARK: "@@sigit-nonce@@";

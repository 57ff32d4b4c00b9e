// noble's scrypt with a progress callback: nostr-tools' NIP-49 calls scrypt without one, so the
// worker's build (worker/build.mjs) points that import here. Same function, same result.
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js'

/** @type {((fraction: number) => void) | undefined} */
let onProgress

/** @param {((fraction: number) => void) | undefined} fn called with 0..1 while scrypt runs */
export function setScryptProgress(fn) {
  onProgress = fn
}

/**
 * @param {string | Uint8Array} password @param {string | Uint8Array} salt
 * @param {{N: number, r: number, p: number, dkLen?: number}} opts
 */
export function scrypt(password, salt, opts) {
  return nobleScrypt(password, salt, onProgress ? { ...opts, onProgress } : opts)
}

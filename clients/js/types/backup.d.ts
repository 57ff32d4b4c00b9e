/**
 * Encrypt the account's secret key for `activate` / `update_backup`.
 * @param {Uint8Array} secretKey 32 bytes
 * @param {string} password
 * @param {string | undefined} entropy from verify_code ('' for an account made by `register`)
 * @param {{logN?: number}} [opts] scrypt cost, 2^logN (default 16, as NIP-49 suggests)
 * @returns {string} an `ncryptsec1...` string
 */
export function makeBackup(secretKey: Uint8Array, password: string, entropy: string | undefined, opts?: {
    logN?: number;
}): string;
/**
 * Decrypt a backup returned by verify_code on login; checks it is the key of `pubkey` when given.
 * @param {string} backup
 * @param {string} password
 * @param {string | undefined} entropy ('' or absent for an account made by `register`)
 * @param {{pubkey?: string}} [opts]
 * @returns {Uint8Array} the account's secret key
 */
export function openBackup(backup: string, password: string, entropy: string | undefined, opts?: {
    pubkey?: string;
}): Uint8Array;

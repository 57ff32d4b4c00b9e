/**
 * Encrypt the account's secret key for `activate`, `register` or `update_backup`, in the worker.
 * @param {Uint8Array} secretKey 32 bytes
 * @param {string} password
 * @param {string | undefined} entropy from verify_code ('' for an account made by `register`)
 * @param {BackupOptions} [opts] `logN`: scrypt cost 2^logN (default 16, as NIP-49 and
 *   docs/protocol.md ask); `onProgress` gets `{stage: 'backup', fraction}`; `signal` cancels
 * @returns {Promise<string>} an `ncryptsec1...` string
 */
export function makeBackup(secretKey: Uint8Array, password: string, entropy: string | undefined, opts?: BackupOptions): Promise<string>;
/**
 * Decrypt a backup returned by verify_code on login, in the worker; checks it is the key of
 * `pubkey` when given. A wrong password is BackupError `wrong_password`: ask again, with the
 * same backup (the code is spent, the verify_code result is not).
 * @param {string} backup
 * @param {string} password
 * @param {string | undefined} entropy ('' or absent for an account made by `register`)
 * @param {BackupOptions & {pubkey?: string}} [opts]
 * @returns {Promise<Uint8Array>} the account's secret key
 */
export function openBackup(backup: string, password: string, entropy: string | undefined, opts?: BackupOptions & {
    pubkey?: string;
}): Promise<Uint8Array>;
export type BackupProgress = import("./types.js").BackupProgress;
export type BackupOptions = {
    logN?: number;
    signal?: AbortSignal;
    onProgress?: (p: BackupProgress) => void;
    workerUrl?: string | URL;
};

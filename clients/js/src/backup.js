// The key backup: NIP-49 `ncryptsec` of the account's secret key, with the password
// NFKC(password + entropy), entropy being the 64 lower-case hex characters verify_code returned
// (what the demo's Python browser and rust-nostr do, so their backups open here and ours there).
// An account made by `register` has no entropy: pass '' and the password alone is used.
// scrypt (log_n 16: 0.5-3 s, 64 MiB) runs in the client's worker, never on the page's thread;
// only where no worker can start at all does nostr-tools' nip49 run here (and block meanwhile).
import { getPublicKey } from 'nostr-tools/pure'
import { BackupError } from './errors.js'
import { runInWorker, workersAvailable } from './workers.js'

/**
 * @typedef {import('./types.js').BackupProgress} BackupProgress
 * @typedef {{logN?: number, signal?: AbortSignal, onProgress?: (p: BackupProgress) => void, workerUrl?: string | URL}} BackupOptions
 */

const HEX64 = /^[0-9a-f]{64}$/

/** @param {string | undefined | null} entropy */
function checkEntropy(entropy) {
  if (entropy === '' || entropy === undefined || entropy === null) return '' // a `register` account
  const lower = String(entropy).toLowerCase()
  if (!HEX64.test(lower)) throw new BackupError('backup_invalid', 'entropy must be 64 hex characters')
  return lower
}

/** @param {string} password */
function checkPassword(password) {
  if (typeof password !== 'string' || password.length === 0) {
    throw new BackupError('backup_invalid', 'the password must not be empty')
  }
}

/** @param {((p: BackupProgress) => void) | undefined} onProgress */
function relay(onProgress) {
  return onProgress && ((/** @type {any} */ data) => onProgress({ stage: 'backup', fraction: Number(data.fraction) }))
}

/** @param {string} code @param {string} message */
function backupFailure(code, message) {
  if (code === 'wrong_password') return new BackupError('wrong_password', 'the password does not open this backup')
  if (code === 'backup_invalid') return new BackupError('backup_invalid', `the backup is not a valid NIP-49 ncryptsec (${message})`)
  return undefined
}

/**
 * Encrypt the account's secret key for `activate`, `register` or `update_backup`, in the worker.
 * @param {Uint8Array} secretKey 32 bytes
 * @param {string} password
 * @param {string | undefined} entropy from verify_code ('' for an account made by `register`)
 * @param {BackupOptions} [opts] `logN`: scrypt cost 2^logN (default 16, as NIP-49 and
 *   docs/protocol.md ask); `onProgress` gets `{stage: 'backup', fraction}`; `signal` cancels
 * @returns {Promise<string>} an `ncryptsec1...` string
 */
export async function makeBackup(secretKey, password, entropy, opts = {}) {
  checkPassword(password)
  const salt = checkEntropy(entropy)
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) {
    throw new BackupError('backup_invalid', 'the secret key must be 32 bytes')
  }
  const logN = opts.logN ?? 16
  if (!workersAvailable()) {
    const { encrypt } = await import('nostr-tools/nip49')
    return encrypt(secretKey, password + salt, logN, 0x02)
  }
  const done = await runInWorker(
    { op: 'encrypt', secretKey, password: password + salt, logN },
    { signal: opts.signal, url: opts.workerUrl, onProgress: relay(opts.onProgress), onFailure: backupFailure },
  )
  opts.onProgress?.({ stage: 'backup', fraction: 1 })
  return String(done.backup)
}

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
export async function openBackup(backup, password, entropy, opts = {}) {
  checkPassword(password)
  const salt = checkEntropy(entropy)
  if (typeof backup !== 'string' || !backup.startsWith('ncryptsec1')) {
    throw new BackupError('backup_invalid', 'the backup is not a NIP-49 ncryptsec')
  }
  /** @type {Uint8Array} */
  let secretKey
  if (!workersAvailable()) {
    const { decrypt } = await import('nostr-tools/nip49')
    try {
      secretKey = decrypt(backup, password + salt)
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err)
      throw backupFailure(/\btag\b/i.test(text) ? 'wrong_password' : 'backup_invalid', text)
    }
  } else {
    const done = await runInWorker(
      { op: 'decrypt', backup, password: password + salt },
      { signal: opts.signal, url: opts.workerUrl, onProgress: relay(opts.onProgress), onFailure: backupFailure },
    )
    secretKey = new Uint8Array(done.secretKey)
    opts.onProgress?.({ stage: 'backup', fraction: 1 })
  }
  if (opts.pubkey && getPublicKey(secretKey) !== opts.pubkey) {
    throw new BackupError('backup_invalid', 'the backup holds another key than the account\'s')
  }
  return secretKey
}

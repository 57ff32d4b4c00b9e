// The key backup: NIP-49 `ncryptsec` of the account's secret key, with the password
// NFKC(password + entropy), entropy being the 64 lower-case hex characters verify_code returned
// (what the demo's Python browser and rust-nostr do, so their backups open here and ours there).
// An account made by `register` has no entropy: pass '' and the password alone is used.
import { decrypt, encrypt } from 'nostr-tools/nip49'
import { getPublicKey } from 'nostr-tools/pure'
import { BackupError } from './errors.js'

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

/**
 * Encrypt the account's secret key for `activate` / `update_backup`.
 * @param {Uint8Array} secretKey 32 bytes
 * @param {string} password
 * @param {string | undefined} entropy from verify_code ('' for an account made by `register`)
 * @param {{logN?: number}} [opts] scrypt cost, 2^logN (default 16, as NIP-49 suggests)
 * @returns {string} an `ncryptsec1...` string
 */
export function makeBackup(secretKey, password, entropy, opts = {}) {
  checkPassword(password)
  const salt = checkEntropy(entropy)
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) {
    throw new BackupError('backup_invalid', 'the secret key must be 32 bytes')
  }
  return encrypt(secretKey, password + salt, opts.logN ?? 16, 0x02)
}

/**
 * Decrypt a backup returned by verify_code on login; checks it is the key of `pubkey` when given.
 * @param {string} backup
 * @param {string} password
 * @param {string | undefined} entropy ('' or absent for an account made by `register`)
 * @param {{pubkey?: string}} [opts]
 * @returns {Uint8Array} the account's secret key
 */
export function openBackup(backup, password, entropy, opts = {}) {
  checkPassword(password)
  const salt = checkEntropy(entropy)
  if (typeof backup !== 'string' || !backup.startsWith('ncryptsec1')) {
    throw new BackupError('backup_invalid', 'the backup is not a NIP-49 ncryptsec')
  }
  let secretKey
  try {
    secretKey = decrypt(backup, password + salt)
  } catch (err) {
    // Only a failed AEAD tag means the password; anything else (bech32, prefix, version) the backup.
    if (/\btag\b/i.test(err instanceof Error ? err.message : '')) {
      throw new BackupError('wrong_password', 'the password does not open this backup')
    }
    throw new BackupError('backup_invalid', 'the backup is not a valid NIP-49 ncryptsec')
  }
  if (opts.pubkey && getPublicKey(secretKey) !== opts.pubkey) {
    throw new BackupError('backup_invalid', 'the backup holds another key than the account\'s')
  }
  return secretKey
}

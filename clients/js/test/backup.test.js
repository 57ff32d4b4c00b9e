import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { BackupError, makeBackup, openBackup } from '../src/index.js'
import { PYTHON } from './stack.js'

const ENTROPY = '0983b8ff0cbde7ed12804c5be0621dceca1c5860ab76e9ff68e2f7be35797a83'
const toHex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex')

test('a backup opens with the same password and entropy, to the same key', () => {
  const key = generateSecretKey()
  const backup = makeBackup(key, 'pässword', ENTROPY, { logN: 10 })
  assert.match(backup, /^ncryptsec1[a-z0-9]{152}$/)
  assert.equal(toHex(openBackup(backup, 'pässword', ENTROPY, { pubkey: getPublicKey(key) })), toHex(key))
  // NFKC: the composed and decomposed spellings of a password are the same password (NIP-49).
  assert.equal(toHex(openBackup(backup, 'pa\u0308ssword', ENTROPY)), toHex(key))
  assert.equal(toHex(openBackup(backup, 'pässword', ENTROPY.toUpperCase())), toHex(key))
})

test('a wrong password, other entropy, a broken or foreign backup are typed errors', () => {
  const key = generateSecretKey()
  const backup = makeBackup(key, 'secret', ENTROPY, { logN: 10 })
  const code = (/** @type {() => unknown} */ fn) => {
    try {
      fn()
    } catch (err) {
      assert.ok(err instanceof BackupError)
      return err.code
    }
    return 'no error'
  }
  assert.equal(code(() => openBackup(backup, 'Secret', ENTROPY)), 'wrong_password')
  assert.equal(code(() => openBackup(backup, 'secret', 'ff'.repeat(32))), 'wrong_password')
  assert.equal(code(() => openBackup(backup.slice(0, -4) + 'qqqq', 'secret', ENTROPY)), 'backup_invalid')
  assert.equal(code(() => openBackup('QUJD', 'secret', ENTROPY)), 'backup_invalid')
  assert.equal(code(() => openBackup(backup, 'secret', ENTROPY, { pubkey: 'ab'.repeat(32) })), 'backup_invalid')
  assert.equal(code(() => makeBackup(key, '', ENTROPY)), 'backup_invalid')
  assert.equal(code(() => makeBackup(key, 'secret', 'not hex')), 'backup_invalid')
})

// rust-nostr (through the Python venv's nostr-sdk, as the demo's simulated browser uses it) and
// this client open each other's backups: "any two builds interoperate".
const RUST = `
import sys, nostr_sdk as rn
op, arg, password = sys.argv[1], sys.argv[2], sys.argv[3]
if op == "make":
    print(rn.SecretKey.parse(arg).encrypt(password).to_bech32())
else:
    print(rn.EncryptedSecretKey.from_bech32(arg).decrypt(password).to_hex())
`

test('rust-nostr opens this client\'s backup and this client opens rust-nostr\'s', () => {
  const key = generateSecretKey()
  const password = 'correct horse battery staple'
  const ours = makeBackup(key, password, ENTROPY)
  const opened = execFileSync(PYTHON, ['-c', RUST, 'open', ours, password + ENTROPY]).toString().trim()
  assert.equal(opened, toHex(key))
  const theirs = execFileSync(PYTHON, ['-c', RUST, 'make', toHex(key), password + ENTROPY]).toString().trim()
  assert.equal(toHex(openBackup(theirs, password, ENTROPY)), toHex(key))
})

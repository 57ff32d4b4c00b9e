import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { bech32 } from '@scure/base'
import * as nip49 from 'nostr-tools/nip49'
import { BackupError, CancelledError, makeBackup, openBackup } from '../src/node.js'
import { PYTHON } from './stack.js'

const ENTROPY = '0983b8ff0cbde7ed12804c5be0621dceca1c5860ab76e9ff68e2f7be35797a83'
const toHex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex')

test('a backup opens with the same password and entropy, to the same key', async () => {
  const key = generateSecretKey()
  const backup = await makeBackup(key, 'pässword', ENTROPY, { logN: 10 })
  assert.match(backup, /^ncryptsec1[a-z0-9]{152}$/)
  assert.equal(toHex(await openBackup(backup, 'pässword', ENTROPY, { pubkey: getPublicKey(key) })), toHex(key))
  // NFKC: the composed and decomposed spellings of a password are the same password (NIP-49).
  assert.equal(toHex(await openBackup(backup, 'pa\u0308ssword', ENTROPY)), toHex(key))
  assert.equal(toHex(await openBackup(backup, 'pässword', ENTROPY.toUpperCase())), toHex(key))
})

test('a wrong password, other entropy, a broken or foreign backup are typed errors', async () => {
  const key = generateSecretKey()
  const backup = await makeBackup(key, 'secret', ENTROPY, { logN: 10 })
  const code = async (/** @type {() => Promise<unknown>} */ fn) => {
    try {
      await fn()
    } catch (err) {
      assert.ok(err instanceof BackupError, String(err))
      return err.code
    }
    return 'no error'
  }
  assert.equal(await code(() => openBackup(backup, 'Secret', ENTROPY)), 'wrong_password')
  assert.equal(await code(() => openBackup(backup, 'secret', 'ff'.repeat(32))), 'wrong_password')
  assert.equal(await code(() => openBackup(backup.slice(0, -4) + 'qqqq', 'secret', ENTROPY)), 'backup_invalid')
  assert.equal(await code(() => openBackup('QUJD', 'secret', ENTROPY)), 'backup_invalid')
  assert.equal(await code(() => openBackup(backup, 'secret', ENTROPY, { pubkey: 'ab'.repeat(32) })), 'backup_invalid')
  assert.equal(await code(() => makeBackup(key, '', ENTROPY)), 'backup_invalid')
  assert.equal(await code(() => makeBackup(key, 'secret', 'not hex')), 'backup_invalid')
})

test('scrypt runs in the worker with progress, and matches nostr-tools\' own NIP-49 both ways', async () => {
  const key = generateSecretKey()
  /** @type {any[]} */
  const progress = []
  const ours = await makeBackup(key, 'pw', ENTROPY, { logN: 12, onProgress: (p) => progress.push(p) })
  assert.ok(progress.length >= 10, `${progress.length} progress calls`)
  assert.ok(progress.every((p) => p.stage === 'backup' && p.fraction >= 0 && p.fraction <= 1))
  assert.equal(progress.at(-1).fraction, 1)
  assert.equal(toHex(nip49.decrypt(ours, 'pw' + ENTROPY)), toHex(key))
  const theirs = nip49.encrypt(key, 'pw' + ENTROPY, 12, 0x02)
  assert.equal(toHex(await openBackup(theirs, 'pw', ENTROPY)), toHex(key))
  // The backup's parameters: version 2, log_n as asked, key-security byte 0x02.
  const bytes = bech32.fromWords(bech32.decode(/** @type {`${string}1${string}`} */ (ours), 5000).words)
  assert.deepEqual([bytes.length, bytes[0], bytes[1], bytes[42]], [91, 2, 12, 2])
})

test('an AbortSignal stops a backup (the worker is ended) with CancelledError', async () => {
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 50)
  const started = Date.now()
  await assert.rejects(makeBackup(generateSecretKey(), 'pw', '', { logN: 20, signal: controller.signal }), (err) => {
    assert.ok(err instanceof CancelledError)
    return true
  })
  assert.ok(Date.now() - started < 2000)
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

test('rust-nostr opens this client\'s backup and this client opens rust-nostr\'s', async () => {
  const key = generateSecretKey()
  const password = 'correct horse battery staple'
  const ours = await makeBackup(key, password, ENTROPY)
  const opened = execFileSync(PYTHON, ['-c', RUST, 'open', ours, password + ENTROPY]).toString().trim()
  assert.equal(opened, toHex(key))
  const theirs = execFileSync(PYTHON, ['-c', RUST, 'make', toHex(key), password + ENTROPY]).toString().trim()
  assert.equal(toHex(await openBackup(theirs, password, ENTROPY)), toHex(key))
})

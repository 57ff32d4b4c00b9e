// The client's one worker: NIP-13 mining (src/pow-core.js) and NIP-49 backups (nostr-tools' own
// nip49, scrypt log_n 16), off the page's thread. tools/build-worker.mjs bundles this file with its
// imports into one classic script with no imports at all (src/worker-source.js, dist/worker.js), so
// no bundler has to find, copy or rewrite it: the client starts it from a Blob (or from a URL the
// site serves, `workerUrl`) in browsers, and with worker_threads' `eval` in Node.
//
// In: {op: 'pow', serialized, bits, start, step} | {op: 'encrypt', secretKey, password, logN}
//     | {op: 'decrypt', backup, password}
// Out: {type: 'progress', tries | fraction} ... then {type: 'done', ...} or {type: 'error', code, message}.
import { decrypt, encrypt } from 'nostr-tools/nip49'
import { mine } from '../src/pow-core.js'
import { setScryptProgress } from './scrypt-progress.js'

const scope = /** @type {any} */ (globalThis)

/** @param {unknown} message */
function post(message) {
  scope.postMessage(message)
}

/** Progress of scrypt, at most every 1% (noble calls back up to 10,000 times). */
function scryptProgress() {
  let last = 0
  return (/** @type {number} */ fraction) => {
    if (fraction - last >= 0.01 || fraction === 1) {
      last = fraction
      post({ type: 'progress', fraction })
    }
  }
}

/** @param {any} msg */
function run(msg) {
  if (msg.op === 'pow') {
    const found = mine(msg.serialized, msg.bits, {
      start: msg.start,
      step: msg.step,
      progress: (tries) => post({ type: 'progress', tries }),
    })
    post({ type: 'done', ...found })
  } else if (msg.op === 'encrypt') {
    setScryptProgress(scryptProgress())
    post({ type: 'done', backup: encrypt(msg.secretKey, msg.password, msg.logN, 0x02) })
  } else if (msg.op === 'decrypt') {
    setScryptProgress(scryptProgress())
    let secretKey
    try {
      secretKey = decrypt(msg.backup, msg.password)
    } catch (err) {
      // Only a failed AEAD tag means the password; anything else (bech32, prefix, version) the backup.
      const text = err instanceof Error ? err.message : String(err)
      post({ type: 'error', code: /\btag\b/i.test(text) ? 'wrong_password' : 'backup_invalid', message: text })
      return
    }
    post({ type: 'done', secretKey })
  } else {
    post({ type: 'error', code: 'worker_failed', message: `unknown operation ${String(msg.op)}` })
  }
}

scope.onmessage = (/** @type {{data: unknown}} */ event) => {
  try {
    run(event.data)
  } catch (err) {
    post({ type: 'error', code: 'worker_failed', message: err instanceof Error ? err.message : String(err) })
  }
}

// The site's signup code, as a developer writes it from the client's README; every bundler in
// the README's recipes builds this file. The page's address names the DVM (?dvm=dvm@host:port)
// and, for a page whose Content-Security-Policy refuses blob: workers, where the site serves the
// package's dist/worker.js (?worker=/worker.js).
import { discover, userMessage } from 'sigit-dvm-client'

let dvm = null
let session = null

window.sigitSite = {
  /** Discover the DVM, ask for a code (PoW in the client's worker). */
  async start(email) {
    const params = new URLSearchParams(location.search)
    dvm = await discover(params.get('dvm'), { storage: localStorage, workerUrl: params.get('worker') ?? undefined })
    session = dvm.session()
    await session.requestAccount(email)
    return session.pubkey
  },
  /** The code from the email: verify, make the key and its backup (scrypt in the worker), activate. */
  async finish(code, password) {
    await session.verifyCode(code)
    const steps = []
    const { secretKey } = await session.createAccount(password, undefined, { onProgress: (p) => steps.push(p.stage) })
    const status = await dvm.status(secretKey)
    return { email: status.email, backupProgress: steps.filter((s) => s === 'backup').length }
  },
  /** What a failed step shows: its code and the sentence for people. */
  async attempt(email) {
    try {
      await window.sigitSite.start(email)
      return { code: 'ok' }
    } catch (err) {
      return { code: err.code, message: userMessage(err) }
    }
  },
}
document.body.dataset.ready = 'true'

// Starts the real services for the Node tests: `python -m dvm.demo.stack` (a nostr-relay, the mail
// catcher, `sigit-dvm run`, the demo's web server for NIP-05 and the caught mail), low PoW.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const PYTHON = process.env.SIGIT_PYTHON ?? join(REPO, '.venv', 'bin', 'python')
export { WebSocket }

/**
 * @returns {Promise<{relay: string, pubkey: string, web: string, nip05: string, mail: () => Promise<any[]>, codeFor: (email: string, after: number) => Promise<string>, count: (email: string) => Promise<number>, stop: () => Promise<void>}>}
 */
export async function startStack(powBits = '8,4') {
  if (!existsSync(PYTHON)) throw new Error(`no Python at ${PYTHON}: run scripts/bootstrap (or set SIGIT_PYTHON)`)
  const child = spawn(PYTHON, ['-m', 'dvm.demo.stack', '--web', '--pow-bits', powBits], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout })
  const first = await new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error('the stack did not start in 60 s')), 60_000)
    lines.once('line', (line) => {
      clearTimeout(timer)
      resolveLine(line)
    })
    child.once('exit', (code) => reject(new Error(`the stack exited with ${code}`)))
  })
  const info = JSON.parse(first)
  const mail = async () => (await fetch(new URL('demo/mail', info.web))).json()
  const count = async (/** @type {string} */ email) => (await mail()).filter((m) => m.to === email && m.code).length
  /** The newest code to `email` once more than `after` code emails went to it. */
  const codeFor = async (/** @type {string} */ email, /** @type {number} */ after) => {
    const deadline = Date.now() + 20_000
    for (;;) {
      const codes = (await mail()).filter((m) => m.to === email && m.code)
      if (codes.length > after) return codes[codes.length - 1].code
      if (Date.now() > deadline) throw new Error(`no new code email to ${email}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const stop = () =>
    new Promise((done) => {
      child.once('exit', () => done(undefined))
      child.stdin.end() // the stack stops everything it started when its stdin closes
    })
  return { ...info, mail, count, codeFor, stop }
}

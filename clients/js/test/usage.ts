// Type-checked against types/*.d.ts through the package's own name (test/types.test.js): the
// README's examples, so they cannot drift from the API.
import {
  BackupError,
  ProtocolError,
  discover,
  userMessage,
  type AccountStatus,
  type MessageCatalog,
  type Progress,
  type Session,
  type SigitDvm,
  type Signer,
} from 'sigit-dvm-client'
import type { BunkerSigner } from 'nostr-tools/nip46'
import type { WindowNostr } from 'nostr-tools/nip07'
import type { SimplePool } from 'nostr-tools/pool'

declare global {
  interface Window {
    nostr?: WindowNostr
  }
}

// README: "Sign up in ten lines"
export async function signup(email: string, password: string, askCode: () => Promise<string>): Promise<Uint8Array> {
  const dvm = await discover('dvm@sigit.io', { storage: localStorage })  // NIP-05 -> announcement -> kinds, PoW
  const session = dvm.session()                                  // a fresh ephemeral key, saved while a code is awaited
  await session.requestAccount(email, { onProgress: (p: Progress) => console.log(p.stage, p.fraction) })
  await session.verifyCode(await askCode())                      // the code from the email (6 or 16 digits)
  const { secretKey } = await session.createAccount(password)    // key + NIP-49 backup (in a worker), activated
  const status: AccountStatus = await dvm.status(secretKey)      // sealed by the new account key
  console.log(`signed up as ${status.email}`)
  return secretKey
}

// README: "Log in on a new device" (a wrong password does not spend the code)
export async function login(email: string, askPassword: () => Promise<string>, askCode: () => Promise<string>): Promise<Uint8Array | null> {
  const dvm = await discover('dvm@sigit.io')
  const session = dvm.session({ storage: localStorage })
  try {
    await session.requestLogin(email)
  } catch (err) {
    if (err instanceof ProtocolError && err.code === 'unknown_email') return null // go to signup
    throw err
  }
  await session.verifyCode(await askCode())                     // keeps {backup, entropy, pubkey}
  for (;;) {
    try {
      return await session.unlock(await askPassword())          // scrypt in the worker
    } catch (err) {
      if (!(err instanceof BackupError && err.code === 'wrong_password')) throw err
    }
  }
}

// README: "Reloads and the emailed link"
export async function onPageLoad(dvm: SigitDvm): Promise<Session | null> {
  const session = await dvm.resume({ storage: localStorage })   // null: nothing saved (or too old)
  const code = new URLSearchParams(location.hash.split('?')[1] ?? '').get('code')
  if (session && code) await session.verifyCode(code)           // #/verify?code=...
  return session                                                // session.flow, .step, .email
}

// README: "Signers and relay pools"
export async function withSitesPoolAndSigner(pool: SimplePool, bunker: BunkerSigner): Promise<string> {
  const dvm = await discover('dvm@sigit.io', { pool, lang: navigator.language })
  const extension: Signer | undefined = window.nostr            // NIP-07
  const remote: Signer = bunker                                  // NIP-46
  await dvm.revokeSessions(remote)                               // sigit-dvm/3
  const status = await dvm.status(extension ?? remote, { signal: AbortSignal.timeout(30_000) })
  return status.email
}

// README: "Errors and messages for people"
const german: MessageCatalog = {
  code_invalid: 'Der Code stimmt nicht. Noch {attempts_left} Versuche.',
  unknown: 'Etwas ist schiefgegangen. Bitte versuchen Sie es noch einmal.',
}
export function explain(err: unknown, lang: string): string {
  return userMessage(err, { messages: lang.startsWith('de') ? german : undefined })
}

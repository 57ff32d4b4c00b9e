// Type-checked against types/*.d.ts through the package's own name (test/types.test.js); also
// the README's signup example, so the example cannot drift from the API.
import { discover, openBackup, ProtocolError, type AccountStatus, type PowProgress } from 'sigit-dvm-client'

export async function signup(email: string, password: string, askCode: () => Promise<string>): Promise<Uint8Array> {
  const dvm = await discover('dvm@sigit.io')                      // NIP-05 -> announcement -> kinds, PoW
  const session = dvm.session()                                  // a fresh ephemeral key
  await session.requestAccount(email, { onProgress: (p: PowProgress) => console.log(p.fraction) })
  const { entropy } = await session.verifyCode(await askCode())   // the code from the email
  const { secretKey } = await session.createAccount(password, entropy) // key + NIP-49 backup, activated
  const status: AccountStatus = await dvm.status(secretKey)
  console.log(`signed up as ${status.email}`)
  return secretKey
}

export async function login(email: string, password: string, askCode: () => Promise<string>): Promise<Uint8Array | null> {
  const dvm = await discover('dvm@sigit.io')
  const session = dvm.session()
  try {
    await session.requestLogin(email)
  } catch (err) {
    if (err instanceof ProtocolError && err.code === 'unknown_email') return null
    throw err
  }
  const result = await session.verifyCode(await askCode())
  if (!result.backup) throw new Error('a signup, not a login')
  return openBackup(result.backup, password, result.entropy, { pubkey: result.pubkey })
}

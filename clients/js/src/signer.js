// Who signs for the account: the account's secret key itself, or a signer that keeps it: a NIP-07
// browser extension (`window.nostr`), a NIP-46 remote signer (nostr-tools' BunkerSigner), or
// anything with the same two methods. Seals (docs/protocol.md, "Sealed requests") are the only
// thing the account key signs, so a signer is all an account method needs.
import { finalizeEvent, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { SignerError } from './errors.js'

/**
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 * @typedef {{kind: number, created_at: number, tags: string[][], content: string}} EventTemplate
 * @typedef {object} Signer NIP-07's interface (also nostr-tools' BunkerSigner for NIP-46)
 * @property {() => string | Promise<string>} getPublicKey the account's public key, hex
 * @property {(template: EventTemplate) => NostrEvent | Promise<NostrEvent>} signEvent
 * @typedef {Uint8Array | Signer} AccountKey the account's secret key (32 bytes), or a signer for it
 */

/**
 * A signer for a secret key (kept by the returned object only while it is used).
 * @param {Uint8Array} secretKey
 * @returns {Signer}
 */
export function keySigner(secretKey) {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new TypeError('a secret key is 32 bytes')
  return {
    getPublicKey: () => getPublicKey(secretKey),
    signEvent: (template) => /** @type {NostrEvent} */ (finalizeEvent(template, secretKey)),
  }
}

/** @param {AccountKey} key @returns {Signer} */
export function asSigner(key) {
  if (key instanceof Uint8Array) return keySigner(key)
  if (key && typeof key.getPublicKey === 'function' && typeof key.signEvent === 'function') return key
  throw new TypeError('the account key must be a 32-byte secret key or a signer (getPublicKey, signEvent)')
}

/** The account's public key from a key or signer. @param {AccountKey} key @returns {Promise<string>} */
export async function publicKeyOf(key) {
  const signer = asSigner(key)
  let pubkey
  try {
    pubkey = await signer.getPublicKey()
  } catch (err) {
    throw new SignerError(`the signer did not give its public key: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  if (typeof pubkey !== 'string' || !/^[0-9a-f]{64}$/.test(pubkey)) throw new SignerError('the signer gave no valid public key')
  return pubkey
}

/**
 * Sign `template` with `key`; the result must be that template, validly signed by `pubkey`.
 * @param {AccountKey} key @param {EventTemplate} template @param {string} pubkey
 * @returns {Promise<NostrEvent>}
 */
export async function signAs(key, template, pubkey) {
  const signer = asSigner(key)
  let event
  try {
    event = await signer.signEvent({ ...template, tags: template.tags.map((t) => [...t]) })
  } catch (err) {
    throw new SignerError(`the signer refused or failed: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  const same =
    event &&
    event.pubkey === pubkey &&
    event.kind === template.kind &&
    event.created_at === template.created_at &&
    event.content === template.content &&
    JSON.stringify(event.tags) === JSON.stringify(template.tags)
  // A plain copy: verifyEvent trusts a mark nostr-tools leaves on events it signed itself.
  const copy = { id: event.id, pubkey: event.pubkey, created_at: event.created_at, kind: event.kind, tags: event.tags, content: event.content, sig: event.sig }
  if (!same || !verifyEvent(copy)) {
    throw new SignerError('the signer returned another event than the one asked for, or an invalid signature')
  }
  return copy
}

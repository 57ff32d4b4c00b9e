// Discovery: a NIP-05 name (or an npub / hex key plus relays) -> the DVM's NIP-89 announcement
// (kind 31990, d=sigit-dvm) -> request kind, PoW minimums, encryption schemes, protocol version.
import { decode } from 'nostr-tools/nip19'
import { verifyEvent } from 'nostr-tools/pure'
import { DiscoveryError } from './errors.js'
import { RelayConnection } from './relay.js'

export const ANNOUNCEMENT_KIND = 31990
export const ANNOUNCEMENT_D = 'sigit-dvm'
export const PROTOCOL = 'sigit-dvm/1'
/** Every version this client speaks; version 2 adds `register`, seals and session calls. */
export const PROTOCOLS = ['sigit-dvm/1', 'sigit-dvm/2']
export const DEFAULT_REQUEST_KIND = 5780

/** docs/protocol.md's default minimums, used until an announcement says otherwise. */
export const DEFAULT_POW_BITS = Object.freeze({
  request_account: 16,
  request_login: 16,
  verify_code: 12,
  activate: 12,
  resend_code: 12,
  status: 12,
  change_email: 12,
  confirm_email: 12,
  update_backup: 12,
  set_notifications: 12,
  request_deletion: 12,
  delete_account: 12,
})

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Resolve `name@domain` (NIP-05) or an npub / hex key to a pubkey and relay hints.
 * @param {string} identifier
 * @param {{fetch?: typeof fetch, allowHttp?: boolean}} [opts]
 * @returns {Promise<{pubkey: string, relays: string[]}>}
 */
export async function resolveIdentifier(identifier, opts = {}) {
  const id = identifier.trim()
  if (HEX64.test(id)) return { pubkey: id, relays: [] }
  if (id.startsWith('npub1')) {
    try {
      const decoded = decode(/** @type {`npub1${string}`} */ (id))
      if (decoded.type === 'npub') return { pubkey: decoded.data, relays: [] }
    } catch {
      // fall through
    }
    throw new DiscoveryError(`not a valid npub: ${id}`)
  }
  const at = id.lastIndexOf('@')
  const name = at > 0 ? id.slice(0, at).toLowerCase() : '_'
  const domain = (at >= 0 ? id.slice(at + 1) : id).toLowerCase()
  if (!/^[a-z0-9.-]+(:\d+)?$/.test(domain) || !/^[a-z0-9._-]+$/.test(name)) {
    throw new DiscoveryError(`not a NIP-05 name, npub or hex key: ${id}`)
  }
  const local = /^(localhost|127\.0\.0\.1)(:\d+)?$/.test(domain)
  const scheme = opts.allowHttp || local ? 'http' : 'https'
  const url = `${scheme}://${domain}/.well-known/nostr.json?name=${encodeURIComponent(name)}`
  const doFetch = opts.fetch ?? globalThis.fetch
  let body
  try {
    const res = await doFetch(url, { redirect: 'error' })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    body = await res.json()
  } catch (err) {
    throw new DiscoveryError(`${url}: ${err instanceof Error ? err.message : String(err)}`, { url })
  }
  const pubkey = body?.names?.[name]
  if (typeof pubkey !== 'string' || !HEX64.test(pubkey)) {
    throw new DiscoveryError(`${url} names no key for ${name}`, { url })
  }
  const relays = Array.isArray(body?.relays?.[pubkey])
    ? body.relays[pubkey].filter((/** @type {unknown} */ r) => typeof r === 'string' && /^wss?:\/\//.test(r))
    : []
  return { pubkey, relays }
}

/**
 * Fetch the newest valid announcement of `pubkey` from `relays`: every relay is asked, and each
 * one's answer ends at its EOSE (or the timeout, or a failed connection).
 * @param {string} pubkey
 * @param {string[]} relays
 * @param {{WebSocket?: any, timeoutMs?: number}} [opts]
 * @returns {Promise<import('./relay.js').NostrEvent | null>}
 */
export async function fetchAnnouncement(pubkey, relays, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 5000
  /** @type {import('./relay.js').NostrEvent | null} */
  let best = null
  const conns = relays.map((url) => new RelayConnection(url, { WebSocket: opts.WebSocket, connectTimeoutMs: timeoutMs }))
  const filter = { kinds: [ANNOUNCEMENT_KIND], authors: [pubkey], '#d': [ANNOUNCEMENT_D] }
  /** @param {import('./relay.js').NostrEvent} event */
  const onEvent = (event) => {
    if (event.pubkey !== pubkey || event.kind !== ANNOUNCEMENT_KIND || !verifyEvent(event)) return
    if (!best || event.created_at > best.created_at) best = event
  }
  try {
    await Promise.all(
      conns.map(
        (conn) =>
          new Promise((resolve) => {
            const timer = setTimeout(resolve, timeoutMs)
            const done = () => {
              clearTimeout(timer)
              resolve(undefined)
            }
            conn.subscribe([filter], onEvent, done, done).catch(done)
          }),
      ),
    )
  } finally {
    for (const conn of conns) conn.close()
  }
  return best
}

/**
 * Read an announcement's content into the client's settings.
 * @param {import('./relay.js').NostrEvent} event
 */
export function parseAnnouncement(event) {
  let content
  try {
    content = JSON.parse(event.content)
  } catch {
    throw new DiscoveryError('the announcement content is not JSON')
  }
  const kindTag = event.tags.find((t) => t[0] === 'k')
  const requestKind = Number(content.request_kind ?? kindTag?.[1] ?? DEFAULT_REQUEST_KIND)
  if (!Number.isInteger(requestKind) || requestKind < 5000 || requestKind > 5999) {
    throw new DiscoveryError(`the announcement names an unusable request kind: ${content.request_kind}`)
  }
  /** @type {Record<string, number>} */
  const powBits = { ...DEFAULT_POW_BITS }
  for (const [method, bits] of Object.entries(content.pow_bits ?? {})) {
    if (Number.isInteger(bits) && /** @type {number} */ (bits) >= 0 && /** @type {number} */ (bits) <= 64) {
      powBits[method] = /** @type {number} */ (bits)
    }
  }
  return {
    pubkey: event.pubkey,
    name: typeof content.name === 'string' ? content.name : '',
    about: typeof content.about === 'string' ? content.about : '',
    protocol: typeof content.protocol === 'string' ? content.protocol : PROTOCOL,
    protocols: Array.isArray(content.protocols)
      ? content.protocols.map(String)
      : [typeof content.protocol === 'string' ? content.protocol : PROTOCOL],
    requestKind,
    replyKind: Number.isInteger(content.reply_kind) ? content.reply_kind : requestKind + 1000,
    encryption: Array.isArray(content.encryption) ? content.encryption.map(String) : ['nip44'],
    powBits,
    createdAtWindowS: Number.isInteger(content.created_at_window_s) ? content.created_at_window_s : 600,
  }
}

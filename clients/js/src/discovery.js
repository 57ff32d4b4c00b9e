// Discovery: a NIP-05 name (or an npub / hex key plus relays) -> the DVM's NIP-89 announcement
// (kind 31990, d=sigit-dvm) -> request kind, PoW minimums, encryption schemes, protocol version.
import { decode } from 'nostr-tools/nip19'
import { verifyEvent } from 'nostr-tools/pure'
import { CancelledError, DiscoveryError } from './errors.js'
import { OwnRelays, PoolRelays } from './transport.js'

export const ANNOUNCEMENT_KIND = 31990
export const ANNOUNCEMENT_D = 'sigit-dvm'
/** The newest version this client speaks. */
export const PROTOCOL = 'sigit-dvm/3'
/** Every version this client speaks: 2 adds `register`, seals and session calls; 3 seals
 * `register` and `activate` with the key they name, codes of 16 digits, prices in PoW,
 * `revoke_sessions` and `lang`. */
export const PROTOCOLS = Object.freeze(['sigit-dvm/1', 'sigit-dvm/2', 'sigit-dvm/3'])
export const DEFAULT_REQUEST_KIND = 5780

/**
 * The newest version both sides speak (1, 2, 3), or 0 for none.
 * @param {readonly string[]} protocols what the DVM announced
 */
export function commonVersion(protocols) {
  let best = 0
  for (const p of protocols) {
    const m = /^sigit-dvm\/(\d+)$/.exec(p)
    if (m && PROTOCOLS.includes(p)) best = Math.max(best, Number(m[1]))
  }
  return best
}

/** The daemon's default minimums (docs/protocol.md, "Proof of work"; a test compares them with
 * the daemon's announcement), used for any method the announcement does not list. */
export const DEFAULT_POW_BITS = Object.freeze({
  request_account: 16,
  register: 16,
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
  revoke_sessions: 12,
})

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Resolve `name@domain` (NIP-05) or an npub / hex key to a pubkey and relay hints. The HTTP
 * request ends after `fetchTimeoutMs` (10000) or when `signal` fires (CancelledError).
 * @param {string} identifier
 * @param {{fetch?: typeof fetch, allowHttp?: boolean, fetchTimeoutMs?: number, signal?: AbortSignal}} [opts]
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
  const timeoutMs = opts.fetchTimeoutMs ?? 10_000
  if (opts.signal?.aborted) throw new CancelledError()
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  const onAbort = () => controller.abort()
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  let body
  try {
    const res = await doFetch(url, { redirect: 'error', signal: controller.signal })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    body = await res.json()
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError()
    const why = timedOut ? `no answer within ${timeoutMs} ms` : err instanceof Error ? err.message : String(err)
    throw new DiscoveryError(`${url}: ${why}`, { url, timedOut })
  } finally {
    clearTimeout(timer)
    opts.signal?.removeEventListener('abort', onAbort)
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
 * Fetch the newest valid announcement of `pubkey` from `relays` (or through the site's `pool`):
 * every relay is asked, and each one's answer ends at its EOSE, the timeout (`timeoutMs`, 5000),
 * a failed connection, or `signal` (then CancelledError).
 * @param {string} pubkey
 * @param {string[]} relays
 * @param {{WebSocket?: any, timeoutMs?: number, signal?: AbortSignal, pool?: import('./transport.js').RelayPool}} [opts]
 * @returns {Promise<import('./relay.js').NostrEvent | null>}
 */
export async function fetchAnnouncement(pubkey, relays, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 5000
  if (opts.signal?.aborted) throw new CancelledError()
  const transport = opts.pool ? new PoolRelays(opts.pool, relays) : new OwnRelays(relays, { WebSocket: opts.WebSocket, connectTimeoutMs: timeoutMs })
  const filter = { kinds: [ANNOUNCEMENT_KIND], authors: [pubkey], '#d': [ANNOUNCEMENT_D] }
  let events
  try {
    events = await transport.query(filter, { timeoutMs, signal: opts.signal })
  } finally {
    transport.close()
  }
  if (opts.signal?.aborted) throw new CancelledError()
  /** @type {import('./relay.js').NostrEvent | null} */
  let best = null
  for (const event of events) {
    if (event.pubkey !== pubkey || event.kind !== ANNOUNCEMENT_KIND || !verifyEvent(event)) continue
    if (!best || event.created_at > best.created_at) best = event
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
    protocol: typeof content.protocol === 'string' ? content.protocol : 'sigit-dvm/1',
    protocols: Array.isArray(content.protocols)
      ? content.protocols.map(String)
      : [typeof content.protocol === 'string' ? content.protocol : 'sigit-dvm/1'],
    requestKind,
    replyKind: Number.isInteger(content.reply_kind) ? content.reply_kind : requestKind + 1000,
    encryption: Array.isArray(content.encryption) ? content.encryption.map(String) : ['nip44'],
    powBits,
    createdAtWindowS: Number.isInteger(content.created_at_window_s) ? content.created_at_window_s : 600,
  }
}

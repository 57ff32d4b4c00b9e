// The client: one call per protocol step, all through one request machinery (encrypt, seal, mine,
// sign, publish to every relay, wait for the signed reply, republish the same event while waiting).
import * as nip04 from 'nostr-tools/nip04'
import * as nip44 from 'nostr-tools/nip44'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { makeBackup, openBackup } from './backup.js'
import {
  DEFAULT_POW_BITS,
  DEFAULT_REQUEST_KIND,
  PROTOCOLS,
  commonVersion,
  fetchAnnouncement,
  parseAnnouncement,
  resolveIdentifier,
} from './discovery.js'
import {
  CancelledError,
  DiscoveryError,
  InputError,
  ProtocolError,
  RelayError,
  ReplyError,
  TimeoutError,
} from './errors.js'
import { minePow } from './pow.js'
import { publicKeyOf, signAs } from './signer.js'
import { OwnRelays, PoolRelays } from './transport.js'

/**
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 * @typedef {import('./types.js').CallOptions} CallOptions
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').DiscoverOptions} DiscoverOptions
 * @typedef {import('./types.js').DvmInfo} DvmInfo
 * @typedef {import('./types.js').AccountStatus} AccountStatus
 * @typedef {import('./types.js').VerifyResult} VerifyResult
 * @typedef {import('./types.js').SessionOptions} SessionOptions
 * @typedef {import('./types.js').ResumeOptions} ResumeOptions
 * @typedef {import('./types.js').SavedFlow} SavedFlow
 * @typedef {import('./types.js').FlowStorage} FlowStorage
 * @typedef {import('./signer.js').AccountKey} AccountKey
 */

const HEX64 = /^[0-9a-f]{64}$/
const LANG = /^[A-Za-z0-9-]{1,35}$/
/** How many times one request is mined again for a higher `pow_too_low.required_bits`. */
const MAX_REMINES = 3
/** Where a session saves its flow, unless told otherwise. */
export const FLOW_STORAGE_KEY = 'sigit-dvm-flow'
const CONFIRMATIONS = new Set(['confirm_email', 'delete_account', 'resend_code'])

/**
 * End the current task and go on in a new one, so the page can paint and handle input between
 * the client's pieces of main-thread work (key derivation, ECDH, signing: each 5-30 ms, the first
 * key derivation more while noble-curves builds its tables), none of which may add up to a long
 * task. `scheduler.yield` where the browser has it, else a timer.
 * @returns {Promise<void>}
 */
export function nextTask() {
  const scheduler = /** @type {any} */ (globalThis).scheduler
  if (typeof scheduler?.yield === 'function') return scheduler.yield()
  return new Promise((resolve) => setTimeout(resolve, 0))
}

/** @param {Uint8Array} bytes */
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
/** @param {string} hex */
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16))

/**
 * A code as the user typed it, ready to send: spaces removed ("1234 5678 9012 3456"), 6 or 16 digits.
 * Anything else is InputError `code_format` (nothing is sent, no attempt is spent).
 * @param {string | number} code
 * @returns {string}
 */
export function normalizeCode(code) {
  const digits = String(code).replace(/\s+/g, '')
  if (!/^(\d{6}|\d{16})$/.test(digits)) throw new InputError('code_format', 'a code is 6 or 16 digits')
  return digits
}

/** @param {unknown} lang */
function checkLang(lang) {
  if (typeof lang !== 'string' || !LANG.test(lang)) throw new TypeError('lang must be a BCP 47 tag: letters, digits and -, at most 35 characters')
  return lang
}

/**
 * Find a DVM by NIP-05 name (`dvm@example.org`), npub or hex key, read its announcement, and
 * return a client for it. `signal` cancels (CancelledError); the NIP-05 request ends after
 * `fetchTimeoutMs` and each relay's answer after `connectTimeoutMs` (DiscoveryError).
 * @param {string} identifier
 * @param {DiscoverOptions} [opts]
 */
export async function discover(identifier, opts = {}) {
  if (opts.signal?.aborted) throw new CancelledError()
  const found = await resolveIdentifier(identifier, opts)
  const relays = [...new Set([...(opts.relays ?? []), ...found.relays])]
  if (relays.length === 0) throw new DiscoveryError(`no relay known for ${identifier}: pass relays`)
  const event = await fetchAnnouncement(found.pubkey, relays, {
    WebSocket: opts.WebSocket,
    timeoutMs: opts.connectTimeoutMs,
    signal: opts.signal,
    pool: opts.pool,
  })
  if (!event) {
    throw new DiscoveryError(`no announcement from ${found.pubkey} on ${relays.join(', ')}`, { pubkey: found.pubkey, relays })
  }
  const info = parseAnnouncement(event)
  if (commonVersion(info.protocols) === 0) {
    throw new DiscoveryError(`the DVM speaks ${info.protocols.join(', ')}; this client speaks ${PROTOCOLS.join(', ')}`)
  }
  return new SigitDvm({ ...opts, ...info, relays })
}

export class SigitDvm {
  /** @param {ClientOptions} opts */
  constructor(opts) {
    if (!HEX64.test(opts.pubkey)) throw new TypeError('pubkey must be 64 lower-case hex characters')
    if (!opts.relays?.length) throw new TypeError('relays must name at least one relay')
    const requestKind = opts.requestKind ?? DEFAULT_REQUEST_KIND
    const protocols = [...(opts.protocols ?? PROTOCOLS)]
    /** The newest protocol version both sides speak (1, 2 or 3). */
    this.version = commonVersion(protocols)
    if (this.version === 0) throw new TypeError(`the DVM speaks ${protocols.join(', ')}; this client speaks ${PROTOCOLS.join(', ')}`)
    /** @type {DvmInfo} */
    this.info = {
      pubkey: opts.pubkey,
      relays: [...opts.relays],
      name: opts.name ?? '',
      about: opts.about ?? '',
      protocol: opts.protocol ?? `sigit-dvm/${this.version}`,
      protocols,
      requestKind,
      replyKind: opts.replyKind ?? requestKind + 1000,
      encryption: opts.encryption ?? ['nip44', 'nip04'],
      powBits: { ...DEFAULT_POW_BITS, ...(opts.powBits ?? {}) },
      createdAtWindowS: opts.createdAtWindowS ?? 600,
    }
    if (opts.lang !== undefined) checkLang(opts.lang)
    this.options = {
      timeoutMs: opts.timeoutMs ?? 60_000,
      republishMs: opts.republishMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
      expirationS: opts.expirationS === undefined ? 3600 : opts.expirationS,
      scheme: opts.scheme ?? 'nip44',
      powWorkers: opts.powWorkers ?? 1,
      maxPowBits: opts.maxPowBits ?? 24,
      workerUrl: opts.workerUrl,
      now: opts.now ?? (() => Math.floor(Date.now() / 1000)),
      sealed: opts.sealed ?? this.version >= 2,
      proveKeys: opts.proveKeys ?? this.version >= 3,
      lang: opts.lang,
      /** @type {FlowStorage | undefined} */
      storage: opts.storage,
      storageKey: opts.storageKey ?? FLOW_STORAGE_KEY,
    }
    /** The ephemeral key of each account's pending email change or deletion (sealed mode).
     * @type {Map<string, Uint8Array>} */
    this.carriers = new Map()
    /** NIP-44 conversation keys with the DVM, by signing key (an ECDH each: done once per key).
     * @type {WeakMap<Uint8Array, Uint8Array>} */
    this.conversationKeys = new WeakMap()
    /** @type {import('./transport.js').Transport} */
    this.transport = opts.pool
      ? new PoolRelays(opts.pool, this.info.relays)
      : new OwnRelays(this.info.relays, { WebSocket: opts.WebSocket, connectTimeoutMs: this.options.connectTimeoutMs })
  }

  /**
   * A new signup or login: a fresh ephemeral key, kept only by the returned object (and, with a
   * `storage`, saved there while a code is awaited, so a reload or the emailed link can resume).
   * @param {SessionOptions} [opts]
   */
  session(opts = {}) {
    return new Session(this, opts)
  }

  /**
   * The flow a session saved in `storage` (localStorage, or an adapter over IndexedDB) while it
   * waited for a code, or null: nothing saved, saved for another DVM, or older than `maxAgeS`
   * (3600; a stale one is deleted). Use it when the page opens (a reload, the emailed link).
   * @param {ResumeOptions} [opts]
   * @returns {Promise<Session | null>}
   */
  async resume(opts = {}) {
    const storage = opts.storage ?? this.options.storage
    if (!storage) throw new TypeError('resume needs a storage: localStorage, or an object with getItem, setItem and removeItem')
    const storageKey = opts.storageKey ?? this.options.storageKey
    let raw
    try {
      raw = await storage.getItem(storageKey)
    } catch {
      return null // a storage the page may not use (privacy settings): nothing to resume
    }
    if (!raw) return null
    /** @type {any} */
    let saved = null
    try {
      saved = JSON.parse(raw)
    } catch {
      // unreadable: dropped below
    }
    if (saved && saved.v === 1 && saved.dvm !== this.info.pubkey) return null // another DVM's flow
    const valid =
      saved &&
      saved.v === 1 &&
      typeof saved.key === 'string' &&
      HEX64.test(saved.key) &&
      ['signup', 'register', 'login'].includes(saved.flow) &&
      saved.step === 'code' &&
      typeof saved.email === 'string' &&
      Number.isFinite(saved.savedAt) &&
      this.options.now() - saved.savedAt <= (opts.maxAgeS ?? 3600)
    if (!valid) {
      try {
        await storage.removeItem(storageKey)
      } catch {
        // left for the next look
      }
      return null
    }
    return new Session(this, { storage, storageKey }, /** @type {SavedFlow} */ (saved))
  }

  /** Close the client's relay connections (a site's `pool` stays open). */
  close() {
    this.transport.close()
  }

  /**
   * Send one request and return its result (`{}` for a success without data; `null` when the DVM
   * sends such successes as an empty content, `service.empty_success_replies`), or throw a
   * ProtocolError carrying the DVM's code. The one machinery every method goes through.
   *
   * A `pow_too_low` asking more bits than were mined is mined again, at `required_bits`, for this
   * request only (sigit-dvm/3: a price while the DVM is under pressure, not a new minimum; a
   * version 2 DVM's figure is kept for the method), at most 3 times and never above `maxPowBits`:
   * past it, the ProtocolError `pow_too_low` carries `details.ceiling`.
   * @param {string} method
   * @param {Record<string, unknown> | undefined} params
   * @param {Uint8Array} secretKey the key that signs (ephemeral, or the account's)
   * @param {CallOptions} [opts]
   * @returns {Promise<Record<string, any> | null>}
   */
  async call(method, params, secretKey, opts = {}) {
    const powBits = this.info.powBits
    let bits = opts.powBits ?? powBits[method] ?? Math.max(...Object.values(powBits))
    for (let round = 0; ; round++) {
      const event = await this.buildRequest(method, params, secretKey, { ...opts, powBits: bits })
      try {
        return await this.send(event, method, secretKey, opts)
      } catch (err) {
        const needed = err instanceof ProtocolError && err.code === 'pow_too_low' ? err.requiredBits : undefined
        if (opts.powBits !== undefined || needed === undefined || needed <= bits || round >= MAX_REMINES) throw err
        const ceiling = opts.maxPowBits ?? this.options.maxPowBits
        if (needed > ceiling) {
          throw new ProtocolError(
            'pow_too_low',
            `${method}: the DVM asks for ${needed} bits of proof of work, more than this client's ceiling (maxPowBits ${ceiling})`,
            { .../** @type {ProtocolError} */ (err).details, ceiling },
            method,
          )
        }
        if (this.version < 3) powBits[method] = needed
        bits = needed
      }
    }
  }

  /**
   * Encrypt, seal (with `opts.seal`), mine and sign a request, without sending it.
   * @param {string} method
   * @param {Record<string, unknown> | undefined} params
   * @param {Uint8Array} secretKey
   * @param {CallOptions} [opts]
   * @returns {Promise<NostrEvent>}
   */
  async buildRequest(method, params, secretKey, opts = {}) {
    const scheme = opts.scheme ?? this.options.scheme
    const createdAt = opts.createdAt ?? this.options.now()
    let plaintext = this.requestJson(method, params, opts)
    await nextTask()
    if (opts.seal) {
      plaintext = await this.sealPlaintext(plaintext, secretKey, opts.seal, createdAt)
      await nextTask()
    }
    const content =
      scheme === 'nip04'
        ? nip04.encrypt(secretKey, this.info.pubkey, plaintext)
        : nip44.encrypt(plaintext, this.conversationKey(secretKey))
    await nextTask()
    /** @type {string[][]} */
    const tags = [['p', this.info.pubkey], ['encrypted']]
    if (this.options.expirationS !== null) tags.push(['expiration', String(createdAt + this.options.expirationS)])
    const bits = opts.powBits ?? this.info.powBits[method] ?? 0
    const template = { pubkey: getPublicKey(secretKey), created_at: createdAt, kind: this.info.requestKind, tags, content }
    const mined = bits > 0
      ? await minePow(template, bits, {
          signal: opts.signal,
          onProgress: opts.onProgress,
          workers: opts.powWorkers ?? this.options.powWorkers,
          workerUrl: this.options.workerUrl,
          inline: opts.powInline,
        })
      : { tags }
    if (opts.signal?.aborted) throw new CancelledError()
    const event = finalizeEvent({ kind: template.kind, created_at: createdAt, tags: mined.tags, content }, secretKey)
    return /** @type {NostrEvent} */ (event)
  }

  /** @param {Uint8Array} secretKey */
  conversationKey(secretKey) {
    let key = this.conversationKeys.get(secretKey)
    if (!key) {
      key = nip44.getConversationKey(secretKey, this.info.pubkey)
      this.conversationKeys.set(secretKey, key)
    }
    return key
  }

  /**
   * The request JSON: `{"method", "params"?, "lang"?}`. `lang` (the user's language, BCP 47) goes
   * only to a DVM that speaks sigit-dvm/3; older ones refuse any other member.
   * @param {string} method @param {Record<string, unknown> | undefined} params @param {CallOptions} opts
   */
  requestJson(method, params, opts) {
    /** @type {Record<string, unknown>} */
    const body = { method }
    if (params !== undefined) body.params = params
    const lang = opts.lang ?? this.options.lang
    if (lang !== undefined && this.version >= 3) body.lang = checkLang(lang)
    return JSON.stringify(body)
  }

  /**
   * `{"seal": ...}`: the request signed by the account key (kind 13, bound to this DVM and to
   * the ephemeral key that carries it), docs/protocol.md "Sealed requests".
   * @param {string} request the request JSON
   * @param {Uint8Array} carrierKey the ephemeral key that signs the outer event
   * @param {AccountKey} account the account's secret key or a signer for it
   * @param {number} createdAt
   */
  async sealPlaintext(request, carrierKey, account, createdAt) {
    const pubkey = await publicKeyOf(account)
    const tags = [['p', this.info.pubkey], ['client', getPublicKey(carrierKey)]]
    const seal = await signAs(account, { kind: 13, created_at: createdAt, tags, content: request }, pubkey)
    return JSON.stringify({ seal })
  }

  /**
   * An account method. Sealed (the default when the DVM serves sigit-dvm/2 or later): a fresh
   * ephemeral key carries the request and the account key (or its signer) only signs the seal
   * inside, so no event on a relay names the account; a confirmation (`confirm_email`,
   * `delete_account`, `resend_code`) reuses the key of the change or deletion it confirms. With
   * `sealed: false` the account's secret key signs the event itself (what version 1 DVMs need;
   * the relay then shows the npub; a signer cannot do this).
   * @param {string} method @param {Record<string, unknown> | undefined} params
   * @param {AccountKey} account @param {CallOptions} [opts]
   */
  async accountCall(method, params, account, opts = {}) {
    if (!(opts.sealed ?? this.options.sealed)) {
      if (!(account instanceof Uint8Array)) {
        throw new TypeError('sealed: false signs the request with the account key itself: pass the secret key, not a signer')
      }
      return this.call(method, params, account, opts)
    }
    const pubkey = await publicKeyOf(account)
    let carrier = CONFIRMATIONS.has(method) ? this.carriers.get(pubkey) : undefined
    if (!carrier) {
      carrier = generateSecretKey()
      if (method === 'change_email' || method === 'request_deletion') this.carriers.set(pubkey, carrier)
    }
    return this.call(method, params, carrier, { ...opts, seal: account })
  }

  /**
   * Publish a signed request to every relay, wait for the DVM's reply on all of them, republish
   * the same event every `republishMs` until `timeoutMs`.
   * @param {NostrEvent} event
   * @param {string} method
   * @param {Uint8Array} secretKey to decrypt the reply (and answer NIP-42 AUTH)
   * @param {CallOptions} [opts]
   * @returns {Promise<Record<string, any> | null>}
   */
  async send(event, method, secretKey, opts = {}) {
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs
    const republishMs = opts.republishMs ?? this.options.republishMs
    const signal = opts.signal
    if (signal?.aborted) throw new CancelledError()
    /** @type {(() => void)[]} */
    const cleanups = []
    try {
      const reply = await new Promise((resolve, reject) => {
        let settled = false
        /** @param {() => void} fn */
        const finish = (fn) => {
          if (!settled) {
            settled = true
            fn()
          }
        }
        /** @param {NostrEvent} candidate */
        const onEvent = (candidate) => {
          if (this.isReplyTo(candidate, event)) finish(() => resolve(candidate))
        }
        const onAbort = () => finish(() => reject(new CancelledError()))
        signal?.addEventListener('abort', onAbort, { once: true })
        cleanups.push(() => signal?.removeEventListener('abort', onAbort))
        const timer = setTimeout(
          () => finish(() => reject(new TimeoutError(`no reply to ${method} within ${timeoutMs} ms`, { requestId: event.id }))),
          timeoutMs,
        )
        cleanups.push(() => clearTimeout(timer))
        const watch = this.transport.watch({ kinds: [this.info.replyKind], '#e': [event.id], authors: [this.info.pubkey] }, onEvent)
        cleanups.push(() => watch.close())
        const auth = (/** @type {{kind: number, created_at: number, tags: string[][], content: string}} */ template) =>
          /** @type {NostrEvent} */ (finalizeEvent(template, secretKey))
        const publishRound = async (/** @type {boolean} */ first) => {
          const subscribed = await watch.refresh()
          const down = subscribed.filter((r) => !r.ok)
          const results = [
            ...down,
            ...(await this.transport.publish(event, {
              timeoutMs: this.options.connectTimeoutMs,
              auth,
              signal,
              only: subscribed.filter((r) => r.ok).map((r) => r.url),
            })),
          ]
          if (first && !results.some((r) => r.ok)) {
            finish(() => reject(new RelayError(`no relay accepted the ${method} request`, { relays: results })))
          }
        }
        publishRound(true).catch((err) => finish(() => reject(err)))
        const every = setInterval(() => {
          if (!settled) publishRound(false).catch(() => {})
        }, republishMs)
        cleanups.push(() => clearInterval(every))
      })
      await nextTask() // the reply's signature was checked in the socket's task: decrypt in a new one
      return this.openReply(/** @type {NostrEvent} */ (reply), method, secretKey)
    } finally {
      for (const cleanup of cleanups) {
        try {
          cleanup()
        } catch {
          // a connection that closed meanwhile
        }
      }
    }
  }

  /** @param {NostrEvent} candidate @param {NostrEvent} request */
  isReplyTo(candidate, request) {
    return (
      candidate.kind === this.info.replyKind &&
      candidate.pubkey === this.info.pubkey &&
      candidate.tags.some((t) => t[0] === 'e' && t[1] === request.id) &&
      verifyEvent(candidate)
    )
  }

  /**
   * @param {NostrEvent} reply @param {string} method @param {Uint8Array} secretKey
   * @returns {Record<string, any> | null}
   */
  openReply(reply, method, secretKey) {
    if (reply.content === '') return null
    let body
    try {
      const plaintext = reply.content.includes('?iv=')
        ? nip04.decrypt(secretKey, this.info.pubkey, reply.content)
        : nip44.decrypt(reply.content, this.conversationKey(secretKey))
      body = JSON.parse(plaintext)
    } catch {
      throw new ReplyError(`the reply to ${method} cannot be decrypted or parsed`)
    }
    if (body && typeof body.error === 'object' && body.error !== null) {
      const { code, message, ...details } = body.error
      throw new ProtocolError(String(code), String(message ?? code), details, method)
    }
    if (body && typeof body.result === 'object' && body.result !== null) return body.result
    throw new ReplyError(`the reply to ${method} has neither result nor error`)
  }

  // Account methods, sealed by the account key or its signer (or signed by the key: `sealed:
  // false`). The key is used for this call only.

  /** @param {AccountKey} account @param {CallOptions} [opts] */
  async status(account, opts) {
    return /** @type {AccountStatus} */ (await this.accountCall('status', undefined, account, opts))
  }

  /** @param {AccountKey} account @param {string} email @param {CallOptions} [opts] */
  async changeEmail(account, email, opts) {
    await this.accountCall('change_email', { email: String(email).trim() }, account, opts)
  }

  /** @param {AccountKey} account @param {string} code 6 or 16 digits (spaces ignored) @param {CallOptions} [opts] */
  async confirmEmail(account, code, opts) {
    return /** @type {{email: string}} */ (await this.accountCall('confirm_email', { code: normalizeCode(code) }, account, opts))
  }

  /** @param {AccountKey} account @param {string} backup @param {CallOptions} [opts] */
  async updateBackup(account, backup, opts) {
    await this.accountCall('update_backup', { backup }, account, opts)
  }

  /**
   * The password change: a new backup of the same key under the new password and the account's
   * entropy (in the worker), stored with update_backup. Needs the secret key itself.
   * @param {Uint8Array} accountKey @param {string} newPassword @param {string | undefined} entropy ("" or absent: a register account)
   * @param {CallOptions & {logN?: number}} [opts]
   */
  async changePassword(accountKey, newPassword, entropy, opts = {}) {
    if (!(accountKey instanceof Uint8Array)) throw new TypeError('a password change encrypts the secret key: pass the key, not a signer')
    const backup = await makeBackup(accountKey, newPassword, entropy, {
      logN: opts.logN,
      signal: opts.signal,
      onProgress: opts.onProgress,
      workerUrl: this.options.workerUrl,
    })
    await this.updateBackup(accountKey, backup, opts)
    return backup
  }

  /** @param {AccountKey} account @param {{loginNotice: boolean}} prefs @param {CallOptions} [opts] */
  async setNotifications(account, prefs, opts) {
    return /** @type {{notifications: {login_notice: boolean}}} */ (await this.accountCall('set_notifications', { login_notice: !!prefs.loginNotice }, account, opts))
  }

  /** @param {AccountKey} account @param {CallOptions} [opts] */
  async requestDeletion(account, opts) {
    await this.accountCall('request_deletion', undefined, account, opts)
  }

  /** @param {AccountKey} account @param {string} code 6 or 16 digits (spaces ignored) @param {CallOptions} [opts] */
  async deleteAccount(account, code, opts) {
    await this.accountCall('delete_account', { code: normalizeCode(code) }, account, opts)
  }

  /** A new code for the account's pending email change or deletion.
   * @param {AccountKey} account @param {CallOptions} [opts] */
  async resendCode(account, opts) {
    await this.accountCall('resend_code', undefined, account, opts)
  }

  /**
   * sigit-dvm/3: every OTHER session of the account (a login on another device, a session a
   * stranger may hold) loses its right to act for it.
   * @param {AccountKey} account @param {CallOptions} [opts]
   */
  async revokeSessions(account, opts) {
    await this.accountCall('revoke_sessions', undefined, account, opts)
  }
}

/**
 * A signup or login on one device: the ephemeral key signs every step. With a `storage`, the
 * flow (key, kind, address, and for `register` the account's public key and encrypted backup)
 * is saved there from the moment a code is asked for until the code is accepted, so that a
 * reload or the emailed link (docs/protocol.md, "The code email") can resume it.
 */
export class Session {
  /** @param {SigitDvm} dvm @param {SessionOptions} [opts] @param {SavedFlow} [saved] */
  constructor(dvm, opts = {}, saved) {
    this.dvm = dvm
    /** @type {FlowStorage | null} */
    this.storage = opts.storage ?? dvm.options.storage ?? null
    this.storageKey = opts.storageKey ?? dvm.options.storageKey
    /** @type {Uint8Array | null} */
    this.key = saved ? fromHex(saved.key) : generateSecretKey()
    /** The ephemeral public key (hex). */
    this.pubkey = getPublicKey(this.key)
    /** What this session does: `signup` (request_account), `register`, `login`; null before. @type {'signup' | 'register' | 'login' | null} */
    this.flow = saved?.flow ?? null
    /** `start`, `code` (a code is awaited), `verified` (the code matched), `done` (activated). @type {'start' | 'code' | 'verified' | 'done'} */
    this.step = saved?.step ?? 'start'
    /** The address the code went to. */
    this.email = saved?.email ?? ''
    /** `register`: the account's public key and its backup (encrypted), to open after the code. @type {string | undefined} */
    this.accountPubkey = saved?.pubkey
    /** @type {string | undefined} */
    this.backup = saved?.backup
    /** Whether this session came from storage (`dvm.resume`). */
    this.resumed = !!saved
    /** The last verify_code result, kept so a wrong password can be retried (`unlock`). @type {VerifyResult | null} */
    this.verified = null
    /** Whether the flow is in the storage now (false also when the storage refused to keep it:
     * a full or forbidden storage never stops a flow, but then only typing the code works). */
    this.saved = !!saved
  }

  /** @returns {Uint8Array} */
  get secretKey() {
    if (!this.key) throw new TypeError('this session was closed')
    return this.key
  }

  /** @param {string} email @param {CallOptions} [opts] */
  async requestAccount(email, opts) {
    await this.begin('signup', email)
    await this.opening('request_account', { email: this.email }, opts)
  }

  /** @param {string} email @param {CallOptions} [opts] */
  async requestLogin(email, opts) {
    await this.begin('login', email)
    await this.opening('request_login', { email: this.email }, opts)
  }

  /**
   * SIGit's current one-event signup: the account key and its backup with the address; the
   * emailed code (`verifyCode`, which then resolves to `{}`) activates the account. Against a
   * sigit-dvm/3 DVM the request is sealed by the account key (`proveKeys`), so pass the key or a
   * signer; a bare public key (hex) is sent unsealed and only older DVMs take it.
   * @param {AccountKey | string} account @param {string} email
   * @param {string} backup @param {CallOptions} [opts]
   */
  async register(account, email, backup, opts = {}) {
    const { pubkey, seal } = await this.prove(account)
    await this.begin('register', email, pubkey, backup)
    await this.opening('register', { pubkey, email: this.email, backup }, { ...opts, seal })
  }

  /**
   * `register` in one call: a new account key, its backup under the password alone (no entropy
   * in this flow, scrypt in the worker), then register. Returns the key; `verifyCode` finishes.
   * @param {string} email @param {string} password @param {CallOptions & {logN?: number}} [opts]
   */
  async signUp(email, password, opts = {}) {
    const secretKey = generateSecretKey()
    const pubkey = getPublicKey(secretKey)
    const backup = await this.backupOf(secretKey, password, '', opts)
    await this.register(secretKey, email, backup, opts)
    return { secretKey, pubkey, backup }
  }

  /**
   * Signup: `{entropy}`. Register: `{}`. Login: `{entropy, pubkey, backup}` (no `entropy` for an
   * account made by `register`). (Private mode: look at the shape.) The code is 6 or 16 digits;
   * spaces are ignored. The result stays in `session.verified` (see `unlock`); the saved flow is
   * deleted: the code is spent.
   * @param {string} code @param {CallOptions} [opts]
   * @returns {Promise<VerifyResult>}
   */
  async verifyCode(code, opts) {
    const result = /** @type {VerifyResult | null} */ (await this.dvm.call('verify_code', { code: normalizeCode(code) }, this.secretKey, opts))
    this.verified = result ?? {}
    this.step = 'verified'
    await this.forget()
    return this.verified
  }

  /**
   * Open the account's backup with the password, after `verifyCode`: a login's backup, or a
   * `register` flow's own (kept by the session). A wrong password is BackupError
   * `wrong_password` and changes nothing: ask again and call `unlock` again (no new code).
   * @param {string} password @param {{signal?: AbortSignal, onProgress?: (p: import('./types.js').BackupProgress) => void}} [opts]
   * @returns {Promise<Uint8Array>} the account's secret key
   */
  async unlock(password, opts = {}) {
    const found = this.verified
    const backupOpts = { ...opts, workerUrl: this.dvm.options.workerUrl }
    if (found?.backup) return openBackup(found.backup, password, found.entropy, { ...backupOpts, pubkey: found.pubkey })
    if (this.flow === 'register' && this.backup) return openBackup(this.backup, password, '', { ...backupOpts, pubkey: this.accountPubkey })
    throw new TypeError('nothing to unlock: no login result and no register backup in this session')
  }

  /**
   * Store the account's real public key and encrypted backup, from this verified signup session.
   * Against a sigit-dvm/3 DVM the request is sealed by the account key (`proveKeys`).
   * @param {AccountKey | string} account the account's key or signer (or, unsealed, its public key in hex)
   * @param {string} backup @param {CallOptions} [opts]
   */
  async activate(account, backup, opts = {}) {
    const { pubkey, seal } = await this.prove(account)
    await this.dvm.call('activate', { pubkey, backup }, this.secretKey, { ...opts, seal })
    this.step = 'done'
  }

  /**
   * The usual activation in one call: a new account key, its backup under password + entropy
   * (scrypt in the worker), then activate. Returns the key: the caller keeps or forgets it.
   * @param {string} password @param {string | undefined} [entropy] default: from `verifyCode`
   * @param {CallOptions & {logN?: number}} [opts]
   */
  async createAccount(password, entropy = this.verified?.entropy, opts = {}) {
    const secretKey = generateSecretKey()
    const pubkey = getPublicKey(secretKey)
    const backup = await this.backupOf(secretKey, password, entropy, opts)
    await this.activate(secretKey, backup, opts)
    return { secretKey, pubkey, backup }
  }

  /** @param {CallOptions} [opts] */
  async resendCode(opts) {
    await this.dvm.call('resend_code', undefined, this.secretKey, opts)
    await this.save()
  }

  /**
   * An account method from this session's key, with no account key: allowed for
   * `account_session_s` after its login or register code matched (or it activated).
   * @param {string} method @param {Record<string, unknown>} [params] @param {CallOptions} [opts]
   */
  account(method, params, opts) {
    return this.dvm.call(method, params, this.secretKey, opts)
  }

  /**
   * Save the flow to the storage (done by every step that asks for a code; call it yourself only
   * to save elsewhere). Only while a code is awaited: nothing else is worth resuming.
   */
  async save() {
    if (!this.storage || !this.key || this.step !== 'code' || !this.flow) return
    /** @type {SavedFlow} */
    const saved = {
      v: 1,
      dvm: this.dvm.info.pubkey,
      key: toHex(this.key),
      flow: this.flow,
      step: 'code',
      email: this.email,
      savedAt: this.dvm.options.now(),
    }
    if (this.accountPubkey) saved.pubkey = this.accountPubkey
    if (this.backup) saved.backup = this.backup
    try {
      await this.storage.setItem(this.storageKey, JSON.stringify(saved))
      this.saved = true
    } catch {
      this.saved = false
    }
  }

  /** Delete the saved flow if it is this session's (another tab may have saved its own since). */
  async forget() {
    if (!this.storage || !this.key) return
    try {
      const raw = await this.storage.getItem(this.storageKey)
      let theirs = false
      try {
        theirs = !!raw && JSON.parse(raw).key !== toHex(this.key)
      } catch {
        // unreadable: ours to delete
      }
      if (raw && !theirs) await this.storage.removeItem(this.storageKey)
    } catch {
      // a storage that fails now: what it holds is dropped by resume once too old
    }
    this.saved = false
  }

  /** End the flow: the saved copy is deleted and the ephemeral key zeroed. */
  async close() {
    const key = this.key
    await this.forget()
    key?.fill(0)
    this.key = null
  }

  /** @param {'signup' | 'register' | 'login'} flow @param {string} email @param {string} [pubkey] @param {string} [backup] */
  async begin(flow, email, pubkey, backup) {
    this.flow = flow
    this.email = String(email).trim()
    this.step = 'code'
    this.verified = null
    this.accountPubkey = pubkey
    this.backup = backup
    // Saved before the request goes out: if the reply is lost (a timeout) but the DVM decided
    // it, the code email's link still finds the flow.
    await this.save()
  }

  /**
   * A request that opens the flow: refused (the DVM decided: no code was mailed), the saved flow
   * is dropped; lost (timeout, relays), it is kept for the code email that may still come.
   * @param {string} method @param {Record<string, unknown>} params @param {CallOptions} [opts]
   */
  async opening(method, params, opts) {
    try {
      await this.dvm.call(method, params, this.secretKey, opts)
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.step = 'start'
        await this.forget()
      }
      throw err
    }
  }

  /** @param {AccountKey | string} account @returns {Promise<{pubkey: string, seal: AccountKey | undefined}>} */
  async prove(account) {
    if (typeof account === 'string') {
      if (!HEX64.test(account)) throw new TypeError('pubkey must be 64 lower-case hex characters')
      return { pubkey: account, seal: undefined }
    }
    const pubkey = await publicKeyOf(account)
    return { pubkey, seal: this.dvm.options.proveKeys ? account : undefined }
  }

  /** @param {Uint8Array} secretKey @param {string} password @param {string | undefined} entropy @param {CallOptions & {logN?: number}} opts */
  backupOf(secretKey, password, entropy, opts) {
    return makeBackup(secretKey, password, entropy, {
      logN: opts.logN,
      signal: opts.signal,
      onProgress: opts.onProgress,
      workerUrl: this.dvm.options.workerUrl,
    })
  }
}

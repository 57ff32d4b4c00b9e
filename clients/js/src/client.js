// The client: one call per protocol step, all through one request machinery (encrypt, mine, sign,
// publish to every relay, wait for the signed reply, republish the same event while waiting).
import * as nip04 from 'nostr-tools/nip04'
import * as nip44 from 'nostr-tools/nip44'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { makeBackup } from './backup.js'
import {
  DEFAULT_POW_BITS,
  DEFAULT_REQUEST_KIND,
  PROTOCOL,
  PROTOCOLS,
  fetchAnnouncement,
  parseAnnouncement,
  resolveIdentifier,
} from './discovery.js'
import { CancelledError, DiscoveryError, ProtocolError, RelayError, ReplyError, TimeoutError } from './errors.js'
import { minePow } from './pow.js'
import { RelayConnection } from './relay.js'

/**
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 * @typedef {import('./types.js').CallOptions} CallOptions
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').DvmInfo} DvmInfo
 * @typedef {import('./types.js').AccountStatus} AccountStatus
 * @typedef {import('./types.js').VerifyResult} VerifyResult
 */

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Find a DVM by NIP-05 name (`dvm@example.org`), npub or hex key, read its announcement, and
 * return a client for it.
 * @param {string} identifier
 * @param {Partial<ClientOptions> & {fetch?: typeof fetch, allowHttp?: boolean}} [opts]
 */
export async function discover(identifier, opts = {}) {
  const found = await resolveIdentifier(identifier, opts)
  const relays = [...new Set([...(opts.relays ?? []), ...found.relays])]
  if (relays.length === 0) throw new DiscoveryError(`no relay known for ${identifier}: pass relays`)
  const event = await fetchAnnouncement(found.pubkey, relays, {
    WebSocket: opts.WebSocket,
    timeoutMs: opts.connectTimeoutMs,
  })
  if (!event) throw new DiscoveryError(`no announcement from ${found.pubkey} on ${relays.join(', ')}`)
  const info = parseAnnouncement(event)
  if (info.protocol !== PROTOCOL) {
    throw new DiscoveryError(`the DVM speaks ${info.protocol}; this client speaks ${PROTOCOL}`)
  }
  return new SigitDvm({ ...opts, ...info, relays })
}

export class SigitDvm {
  /** @param {ClientOptions} opts */
  constructor(opts) {
    if (!HEX64.test(opts.pubkey)) throw new TypeError('pubkey must be 64 lower-case hex characters')
    if (!opts.relays?.length) throw new TypeError('relays must name at least one relay')
    const requestKind = opts.requestKind ?? DEFAULT_REQUEST_KIND
    /** @type {DvmInfo} */
    this.info = {
      pubkey: opts.pubkey,
      relays: [...opts.relays],
      name: opts.name ?? '',
      about: opts.about ?? '',
      protocol: opts.protocol ?? PROTOCOL,
      protocols: [...(opts.protocols ?? PROTOCOLS)],
      requestKind,
      replyKind: opts.replyKind ?? requestKind + 1000,
      encryption: opts.encryption ?? ['nip44', 'nip04'],
      powBits: { ...DEFAULT_POW_BITS, ...(opts.powBits ?? {}) },
      createdAtWindowS: opts.createdAtWindowS ?? 600,
    }
    this.options = {
      timeoutMs: opts.timeoutMs ?? 60_000,
      republishMs: opts.republishMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
      expirationS: opts.expirationS === undefined ? 3600 : opts.expirationS,
      scheme: opts.scheme ?? 'nip44',
      powWorkers: opts.powWorkers ?? 1,
      powWorkerUrl: opts.powWorkerUrl,
      now: opts.now ?? (() => Math.floor(Date.now() / 1000)),
      sealed: opts.sealed ?? (opts.protocols ?? PROTOCOLS).includes('sigit-dvm/2'),
    }
    /** The ephemeral key of each account's pending email change or deletion (sealed mode).
     * @type {Map<string, Uint8Array>} */
    this.carriers = new Map()
    /** @type {Map<string, RelayConnection>} */
    this.relays = new Map(
      this.info.relays.map((url) => [
        url,
        new RelayConnection(url, { WebSocket: opts.WebSocket, connectTimeoutMs: this.options.connectTimeoutMs }),
      ]),
    )
  }

  /** A new signup or login session: a fresh ephemeral key, kept only by the returned object. */
  session() {
    return new Session(this)
  }

  /** Close every relay connection. */
  close() {
    for (const conn of this.relays.values()) conn.close()
  }

  /**
   * Send one request and return its result (`{}` for a success without data; `null` when the DVM
   * sends such successes as an empty content, `service.empty_success_replies`), or throw a
   * ProtocolError carrying the DVM's code. The one machinery every method goes through.
   * @param {string} method
   * @param {Record<string, unknown> | undefined} params
   * @param {Uint8Array} secretKey the key that signs (ephemeral, or the account's)
   * @param {CallOptions} [opts]
   * @returns {Promise<Record<string, any> | null>}
   */
  async call(method, params, secretKey, opts = {}) {
    const event = await this.buildRequest(method, params, secretKey, opts)
    try {
      return await this.send(event, method, secretKey, opts)
    } catch (err) {
      // The DVM wants more work than the announcement said (its operator raised it since):
      // remember the new minimum and mine once more, as docs/protocol.md tells clients to.
      const needed = err instanceof ProtocolError && err.code === 'pow_too_low' ? err.requiredBits : undefined
      if (opts.powBits !== undefined || needed === undefined || needed <= (this.info.powBits[method] ?? 0)) throw err
      this.info.powBits[method] = needed
      const again = await this.buildRequest(method, params, secretKey, opts)
      return this.send(again, method, secretKey, opts)
    }
  }

  /**
   * Encrypt, mine and sign a request (without sending it).
   * @param {string} method
   * @param {Record<string, unknown> | undefined} params
   * @param {Uint8Array} secretKey
   * @param {CallOptions} [opts]
   * @returns {Promise<NostrEvent>}
   */
  async buildRequest(method, params, secretKey, opts = {}) {
    const scheme = opts.scheme ?? this.options.scheme
    let plaintext = JSON.stringify(params === undefined ? { method } : { method, params })
    if (opts.seal) plaintext = this.sealPlaintext(plaintext, secretKey, opts.seal, opts.createdAt ?? this.options.now())
    const content =
      scheme === 'nip04'
        ? nip04.encrypt(secretKey, this.info.pubkey, plaintext)
        : nip44.encrypt(plaintext, nip44.getConversationKey(secretKey, this.info.pubkey))
    const createdAt = opts.createdAt ?? this.options.now()
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
          workerUrl: this.options.powWorkerUrl,
          inline: opts.powInline,
        })
      : { tags }
    const event = finalizeEvent({ kind: template.kind, created_at: createdAt, tags: mined.tags, content }, secretKey)
    return /** @type {NostrEvent} */ (event)
  }

  /**
   * `{"seal": ...}`: the request signed by the account key (kind 13, bound to this DVM and to
   * the ephemeral key that carries it), docs/protocol.md "Sealed requests".
   * @param {string} request the request JSON
   * @param {Uint8Array} carrierKey the ephemeral key that signs the outer event
   * @param {Uint8Array} accountKey
   * @param {number} createdAt
   */
  sealPlaintext(request, carrierKey, accountKey, createdAt) {
    const tags = [['p', this.info.pubkey], ['client', getPublicKey(carrierKey)]]
    const seal = finalizeEvent({ kind: 13, created_at: createdAt, tags, content: request }, accountKey)
    return JSON.stringify({ seal })
  }

  /**
   * An account method. Sealed (the default when the DVM serves sigit-dvm/2): a fresh ephemeral
   * key carries the request and the account key only signs the seal inside, so no event on a
   * relay names the account; a confirmation (`confirm_email`, `delete_account`, `resend_code`)
   * reuses the key of the change or deletion it confirms. With `sealed: false` the account key
   * signs the event itself (what version 1 DVMs need; the relay then shows the npub).
   * @param {string} method @param {Record<string, unknown> | undefined} params
   * @param {Uint8Array} accountKey @param {CallOptions} [opts]
   */
  accountCall(method, params, accountKey, opts = {}) {
    if (!(opts.sealed ?? this.options.sealed)) return this.call(method, params, accountKey, opts)
    const account = getPublicKey(accountKey)
    const confirms = method === 'confirm_email' || method === 'delete_account' || method === 'resend_code'
    let carrier = confirms ? this.carriers.get(account) : undefined
    if (!carrier) {
      carrier = generateSecretKey()
      if (method === 'change_email' || method === 'request_deletion') this.carriers.set(account, carrier)
    }
    return this.call(method, params, carrier, { ...opts, seal: accountKey })
  }

  /**
   * Publish a signed request to every relay, wait for the DVM's reply on all of them, republish
   * the same event every `republishMs` until `timeoutMs`.
   * @param {NostrEvent} event
   * @param {string} method
   * @param {Uint8Array} secretKey to decrypt the reply
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
        /** @type {Set<string>} */
        const subscribed = new Set()
        const filter = { kinds: [this.info.replyKind], '#e': [event.id], authors: [this.info.pubkey] }
        const auth = (/** @type {string} */ challenge, /** @type {string} */ url) =>
          /** @type {NostrEvent} */ (
            finalizeEvent(
              { kind: 22242, created_at: this.options.now(), tags: [['relay', url], ['challenge', challenge]], content: '' },
              secretKey,
            )
          )
        const publishRound = async (/** @type {boolean} */ first) => {
          const results = await Promise.all(
            [...this.relays.values()].map(async (conn) => {
              if (!subscribed.has(conn.url) || !conn.connected) {
                try {
                  const close = await conn.subscribe([filter], onEvent, () => subscribed.delete(conn.url))
                  subscribed.add(conn.url)
                  cleanups.push(close)
                } catch (err) {
                  return { url: conn.url, ok: false, message: `error: ${err instanceof Error ? err.message : String(err)}` }
                }
              }
              const result = await conn.publish(event, { timeoutMs: this.options.connectTimeoutMs, auth })
              return { url: conn.url, ...result }
            }),
          )
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
        : nip44.decrypt(reply.content, nip44.getConversationKey(secretKey, this.info.pubkey))
      body = JSON.parse(plaintext)
    } catch {
      throw new ReplyError(`the reply to ${method} cannot be decrypted or parsed`)
    }
    if (body && typeof body.error === 'object' && body.error !== null) {
      const { code, message, ...details } = body.error
      throw new ProtocolError(String(code), String(message ?? code), details, method)
    }
    if (body && typeof body.result === 'object') return body.result
    throw new ReplyError(`the reply to ${method} has neither result nor error`)
  }

  // Account methods, sealed by the account key (or signed by it: `sealed: false`). The key is used
  // for this call only.

  /** @param {Uint8Array} accountKey @param {CallOptions} [opts] */
  status(accountKey, opts) {
    return /** @type {Promise<AccountStatus>} */ (this.accountCall('status', undefined, accountKey, opts))
  }

  /** @param {Uint8Array} accountKey @param {string} email @param {CallOptions} [opts] */
  async changeEmail(accountKey, email, opts) {
    await this.accountCall('change_email', { email }, accountKey, opts)
  }

  /** @param {Uint8Array} accountKey @param {string} code @param {CallOptions} [opts] */
  confirmEmail(accountKey, code, opts) {
    return /** @type {Promise<{email: string}>} */ (this.accountCall('confirm_email', { code: String(code).trim() }, accountKey, opts))
  }

  /** @param {Uint8Array} accountKey @param {string} backup @param {CallOptions} [opts] */
  async updateBackup(accountKey, backup, opts) {
    await this.accountCall('update_backup', { backup }, accountKey, opts)
  }

  /**
   * The password change: a new backup of the same key under the new password and the account's
   * entropy, stored with update_backup.
   * @param {Uint8Array} accountKey @param {string} newPassword @param {string | undefined} entropy ("" or absent: a register account)
   * @param {CallOptions & {logN?: number}} [opts]
   */
  async changePassword(accountKey, newPassword, entropy, opts = {}) {
    const backup = makeBackup(accountKey, newPassword, entropy, { logN: opts.logN })
    await this.updateBackup(accountKey, backup, opts)
    return backup
  }

  /** @param {Uint8Array} accountKey @param {{loginNotice: boolean}} prefs @param {CallOptions} [opts] */
  setNotifications(accountKey, prefs, opts) {
    return /** @type {Promise<{notifications: {login_notice: boolean}}>} */ (this.accountCall('set_notifications', { login_notice: !!prefs.loginNotice }, accountKey, opts))
  }

  /** @param {Uint8Array} accountKey @param {CallOptions} [opts] */
  async requestDeletion(accountKey, opts) {
    await this.accountCall('request_deletion', undefined, accountKey, opts)
  }

  /** @param {Uint8Array} accountKey @param {string} code @param {CallOptions} [opts] */
  async deleteAccount(accountKey, code, opts) {
    await this.accountCall('delete_account', { code: String(code).trim() }, accountKey, opts)
  }

  /** A new code for the account key's pending email change or deletion.
   * @param {Uint8Array} accountKey @param {CallOptions} [opts] */
  async resendCode(accountKey, opts) {
    await this.accountCall('resend_code', undefined, accountKey, opts)
  }
}

/** A signup or login on one device: the ephemeral key signs every step. */
export class Session {
  /** @param {SigitDvm} dvm */
  constructor(dvm) {
    this.dvm = dvm
    /** @type {Uint8Array | null} */
    this.key = generateSecretKey()
    /** The ephemeral public key (hex). */
    this.pubkey = getPublicKey(this.key)
  }

  /** @returns {Uint8Array} */
  get secretKey() {
    if (!this.key) throw new TypeError('this session was closed')
    return this.key
  }

  /** @param {string} email @param {CallOptions} [opts] */
  async requestAccount(email, opts) {
    await this.dvm.call('request_account', { email: String(email).trim() }, this.secretKey, opts)
  }

  /** @param {string} email @param {CallOptions} [opts] */
  async requestLogin(email, opts) {
    await this.dvm.call('request_login', { email: String(email).trim() }, this.secretKey, opts)
  }

  /**
   * Signup: `{entropy}`. Register: `{}`. Login: `{entropy, pubkey, backup}` (no `entropy` for an
   * account made by `register`). (Private mode: look at the shape.)
   * @param {string} code @param {CallOptions} [opts]
   */
  verifyCode(code, opts) {
    return /** @type {Promise<VerifyResult>} */ (this.dvm.call('verify_code', { code: String(code).trim() }, this.secretKey, opts))
  }

  /** @param {string} pubkey the account's real public key (hex) @param {string} backup @param {CallOptions} [opts] */
  async activate(pubkey, backup, opts) {
    await this.dvm.call('activate', { pubkey, backup }, this.secretKey, opts)
  }

  /**
   * The usual activation in one call: a new account key, its backup under password + entropy,
   * then activate. Returns the key: the caller keeps or forgets it.
   * @param {string} password @param {string | undefined} entropy @param {CallOptions & {logN?: number}} [opts]
   */
  async createAccount(password, entropy, opts = {}) {
    const secretKey = generateSecretKey()
    const pubkey = getPublicKey(secretKey)
    const backup = makeBackup(secretKey, password, entropy, { logN: opts.logN })
    await this.activate(pubkey, backup, opts)
    return { secretKey, pubkey, backup }
  }

  /** @param {CallOptions} [opts] */
  async resendCode(opts) {
    await this.dvm.call('resend_code', undefined, this.secretKey, opts)
  }

  /**
   * SIGit's current one-event signup: the account key and its backup with the address; the
   * emailed code (`verifyCode`, which then resolves to `{}`) activates the account.
   * @param {string} pubkey the account's real public key (hex) @param {string} email
   * @param {string} backup @param {CallOptions} [opts]
   */
  async register(pubkey, email, backup, opts) {
    await this.dvm.call('register', { pubkey, email: String(email).trim(), backup }, this.secretKey, opts)
  }

  /**
   * `register` in one call: a new account key, its backup under the password alone (no
   * entropy in this flow), then register. Returns the key; `verifyCode` finishes the signup.
   * @param {string} email @param {string} password @param {CallOptions & {logN?: number}} [opts]
   */
  async signUp(email, password, opts = {}) {
    const secretKey = generateSecretKey()
    const pubkey = getPublicKey(secretKey)
    const backup = makeBackup(secretKey, password, '', { logN: opts.logN })
    await this.register(pubkey, email, backup, opts)
    return { secretKey, pubkey, backup }
  }

  /**
   * An account method from this session's key, with no account key: allowed for
   * `account_session_s` after its login or register code matched (or it activated).
   * @param {string} method @param {Record<string, unknown>} [params] @param {CallOptions} [opts]
   */
  account(method, params, opts) {
    return this.dvm.call(method, params, this.secretKey, opts)
  }

  /** Forget the ephemeral key (zeroed). */
  close() {
    this.key?.fill(0)
    this.key = null
  }
}

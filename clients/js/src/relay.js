// A small NIP-01 relay connection: publish with OK tracking (NIP-42 AUTH when a relay asks for it),
// subscriptions, nothing else. Events from relays are verified by the caller.

/**
 * @typedef {{id: string, pubkey: string, created_at: number, kind: number, tags: string[][], content: string, sig: string}} NostrEvent
 * @typedef {{ok: boolean, message: string}} PublishResult
 * @typedef {(challenge: string, relayUrl: string) => NostrEvent} AuthSigner
 */

export class RelayConnection {
  /**
   * @param {string} url
   * @param {{WebSocket?: any, connectTimeoutMs?: number}} [opts]
   */
  constructor(url, opts = {}) {
    this.url = url
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000
    /** @type {any} */
    this.ws = null
    /** @type {Promise<void> | null} */
    this.opening = null
    /** @type {string | null} */
    this.challenge = null
    /** @type {Map<string, (r: PublishResult) => void>} */
    this.pendingOk = new Map()
    /** @type {Map<string, {onEvent: (e: NostrEvent) => void, onClosed?: (m: string) => void, onEose?: () => void}>} */
    this.subs = new Map()
    this.nextSub = 0
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === 1
  }

  /** Open the socket (once; again after it closed). @returns {Promise<void>} */
  connect() {
    if (this.connected) return Promise.resolve()
    if (this.opening) return this.opening
    if (!this.WebSocket) throw new Error('no WebSocket implementation: pass one as the WebSocket option')
    this.opening = /** @type {Promise<void>} */ (new Promise((resolve, reject) => {
      const ws = new this.WebSocket(this.url)
      const timer = setTimeout(() => {
        ws.close()
        reject(new Error(`${this.url}: no connection after ${this.connectTimeoutMs} ms`))
      }, this.connectTimeoutMs)
      ws.onopen = () => {
        clearTimeout(timer)
        this.ws = ws
        resolve(undefined)
      }
      ws.onerror = () => {
        clearTimeout(timer)
        reject(new Error(`${this.url}: connection failed`))
      }
      ws.onclose = () => {
        clearTimeout(timer)
        if (this.ws === ws) this.ws = null
        for (const [, done] of this.pendingOk) done({ ok: false, message: 'error: connection closed' })
        this.pendingOk.clear()
        for (const [, sub] of this.subs) sub.onClosed?.('error: connection closed')
        this.subs.clear()
        reject(new Error(`${this.url}: connection closed`))
      }
      ws.onmessage = (/** @type {{data: any}} */ msg) => this.onMessage(String(msg.data))
    })).finally(() => {
      this.opening = null
    })
    return this.opening
  }

  /** @param {string} raw */
  onMessage(raw) {
    let msg
    try {
      msg = JSON.parse(raw)
    } catch {
      return
    }
    if (!Array.isArray(msg)) return
    const [type, a, b, c] = msg
    if (type === 'EVENT' && typeof a === 'string' && b && typeof b === 'object') {
      this.subs.get(a)?.onEvent(b)
    } else if (type === 'EOSE' && typeof a === 'string') {
      this.subs.get(a)?.onEose?.()
    } else if (type === 'OK' && typeof a === 'string') {
      const done = this.pendingOk.get(a)
      this.pendingOk.delete(a)
      done?.({ ok: b === true, message: typeof c === 'string' ? c : '' })
    } else if (type === 'CLOSED' && typeof a === 'string') {
      const sub = this.subs.get(a)
      this.subs.delete(a)
      sub?.onClosed?.(typeof b === 'string' ? b : '')
    } else if (type === 'AUTH' && typeof a === 'string') {
      this.challenge = a
    }
  }

  /** @param {unknown[]} message */
  send(message) {
    if (!this.connected) throw new Error(`${this.url}: not connected`)
    this.ws.send(JSON.stringify(message))
  }

  /**
   * Send an event and wait for the relay's OK. A relay that answers `auth-required:` gets a NIP-42
   * AUTH event from `auth` (when given) and the event once more.
   * @param {NostrEvent} event
   * @param {{timeoutMs?: number, auth?: AuthSigner}} [opts]
   * @returns {Promise<PublishResult>}
   */
  async publish(event, opts = {}) {
    const timeoutMs = opts.timeoutMs ?? 5000
    try {
      await this.connect()
    } catch (err) {
      return { ok: false, message: `error: ${err instanceof Error ? err.message : String(err)}` }
    }
    let result = await this.sendAndWaitOk(['EVENT', event], event.id, timeoutMs)
    if (!result.ok && result.message.startsWith('auth-required:') && opts.auth && this.challenge) {
      const authEvent = opts.auth(this.challenge, this.url)
      const authed = await this.sendAndWaitOk(['AUTH', authEvent], authEvent.id, timeoutMs)
      if (!authed.ok) return authed
      result = await this.sendAndWaitOk(['EVENT', event], event.id, timeoutMs)
    }
    if (!result.ok && result.message.startsWith('duplicate:')) return { ok: true, message: result.message }
    return result
  }

  /**
   * @param {unknown[]} message @param {string} id @param {number} timeoutMs
   * @returns {Promise<PublishResult>}
   */
  sendAndWaitOk(message, id, timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingOk.delete(id)
        resolve({ ok: false, message: `error: no OK within ${timeoutMs} ms` })
      }, timeoutMs)
      this.pendingOk.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      try {
        this.send(message)
      } catch (err) {
        this.pendingOk.delete(id)
        clearTimeout(timer)
        resolve({ ok: false, message: `error: ${err instanceof Error ? err.message : String(err)}` })
      }
    })
  }

  /**
   * Subscribe; returns a function that closes the subscription.
   * @param {Record<string, unknown>[]} filters
   * @param {(e: NostrEvent) => void} onEvent
   * @param {(message: string) => void} [onClosed]
   * @param {() => void} [onEose] the relay sent everything it had stored
   * @returns {Promise<() => void>}
   */
  async subscribe(filters, onEvent, onClosed, onEose) {
    await this.connect()
    const id = `sigit-${++this.nextSub}`
    this.subs.set(id, { onEvent, onClosed, onEose })
    this.send(['REQ', id, ...filters])
    return () => {
      if (this.subs.delete(id) && this.connected) this.send(['CLOSE', id])
    }
  }

  close() {
    this.ws?.close()
    this.ws = null
  }
}

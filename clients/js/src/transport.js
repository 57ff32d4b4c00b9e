// How requests reach the relays: the client's own connections (relay.js), or a pool the site
// already has (nostr-tools' SimplePool, or anything with its `subscribe` and `publish`), so a
// page does not open a second socket to a relay it already talks to.
import { RelayConnection } from './relay.js'

/**
 * @typedef {import('./relay.js').NostrEvent} NostrEvent
 * @typedef {{url: string, ok: boolean, message: string}} RelayAnswer
 * @typedef {(template: {kind: number, created_at: number, tags: string[][], content: string}) => NostrEvent} AuthSign
 * @typedef {{refresh: () => Promise<RelayAnswer[]>, close: () => void}} Watch
 * @typedef {{timeoutMs: number, auth: AuthSign, signal?: AbortSignal, only?: string[]}} PublishOptions
 * @typedef {object} Transport
 * @property {string[]} relays
 * @property {(filter: Record<string, unknown>, onEvent: (e: NostrEvent) => void) => Watch} watch
 *   subscribe on every relay (again, at each `refresh`, where a connection dropped)
 * @property {(event: NostrEvent, opts: PublishOptions) => Promise<RelayAnswer[]>} publish
 *   to every relay, or to those in `only`
 * @property {(filter: Record<string, unknown>, opts: {timeoutMs: number, signal?: AbortSignal}) => Promise<NostrEvent[]>} query
 *   stored events, each relay's answer ending at its EOSE or the timeout
 * @property {() => void} close
 *
 * @typedef {object} RelayPool What the client uses of nostr-tools' SimplePool (>= 2.25)
 * @property {(relays: string[], filter: any, params: {onevent?: (e: any) => void, oneose?: () => void, onclose?: (reasons: any) => void, maxWait?: number}) => {close: (reason?: string) => void}} subscribe
 * @property {(relays: string[], event: any, params?: {onauth?: (template: any) => Promise<any>, maxWait?: number, abort?: AbortSignal}) => Promise<string>[]} publish
 */

/** @param {unknown} err */
const text = (err) => (err instanceof Error ? err.message : String(err))

/**
 * The client's own connections, one per relay, kept open between requests.
 * @implements {Transport}
 */
export class OwnRelays {
  /** @param {string[]} relays @param {{WebSocket?: any, connectTimeoutMs?: number}} [opts] */
  constructor(relays, opts = {}) {
    this.relays = [...relays]
    /** @type {RelayConnection[]} */
    this.conns = this.relays.map((url) => new RelayConnection(url, opts))
  }

  /** @param {Record<string, unknown>} filter @param {(e: NostrEvent) => void} onEvent @returns {Watch} */
  watch(filter, onEvent) {
    /** @type {Set<string>} */
    const subscribed = new Set()
    /** @type {(() => void)[]} */
    const closers = []
    let closed = false
    return {
      refresh: () =>
        Promise.all(
          this.conns.map(async (conn) => {
            if (closed || (subscribed.has(conn.url) && conn.connected)) return { url: conn.url, ok: true, message: '' }
            try {
              const close = await conn.subscribe([filter], onEvent, () => subscribed.delete(conn.url))
              if (closed) close()
              else {
                subscribed.add(conn.url)
                closers.push(close)
              }
              return { url: conn.url, ok: true, message: '' }
            } catch (err) {
              return { url: conn.url, ok: false, message: `error: ${text(err)}` }
            }
          }),
        ),
      close: () => {
        closed = true
        for (const close of closers) {
          try {
            close()
          } catch {
            // a connection that closed meanwhile
          }
        }
      },
    }
  }

  /** @param {NostrEvent} event @param {PublishOptions} opts */
  publish(event, opts) {
    /** @type {import('./relay.js').AuthSigner} */
    const auth = (challenge, url) =>
      opts.auth({ kind: 22242, created_at: Math.floor(Date.now() / 1000), tags: [['relay', url], ['challenge', challenge]], content: '' })
    const conns = opts.only ? this.conns.filter((c) => opts.only?.includes(c.url)) : this.conns
    return Promise.all(
      conns.map(async (conn) => ({ url: conn.url, ...(await conn.publish(event, { timeoutMs: opts.timeoutMs, auth })) })),
    )
  }

  /** @param {Record<string, unknown>} filter @param {{timeoutMs: number, signal?: AbortSignal}} opts */
  async query(filter, opts) {
    /** @type {NostrEvent[]} */
    const found = []
    await Promise.all(
      this.conns.map(
        (conn) =>
          new Promise((resolve) => {
            /** @type {(() => void) | null} */
            let closeSub = null
            let over = false
            const done = () => {
              if (over) return
              over = true
              clearTimeout(timer)
              opts.signal?.removeEventListener('abort', done)
              try {
                closeSub?.()
              } catch {
                // the connection closed meanwhile
              }
              resolve(undefined)
            }
            const timer = setTimeout(done, opts.timeoutMs)
            opts.signal?.addEventListener('abort', done, { once: true })
            conn.subscribe([filter], (e) => found.push(e), done, done).then((close) => {
              closeSub = close
              if (over) close()
            }, done)
          }),
      ),
    )
    return found
  }

  close() {
    for (const conn of this.conns) conn.close()
  }
}

/**
 * The site's pool: subscriptions and publications go through it; closing the client leaves it open.
 * @implements {Transport}
 */
export class PoolRelays {
  /** @param {RelayPool} pool @param {string[]} relays */
  constructor(pool, relays) {
    if (typeof pool?.subscribe !== 'function' || typeof pool?.publish !== 'function') {
      throw new TypeError('pool must have subscribe(relays, filter, params) and publish(relays, event, params), as nostr-tools SimplePool')
    }
    this.pool = pool
    this.relays = [...relays]
  }

  /** @param {Record<string, unknown>} filter @param {(e: NostrEvent) => void} onEvent @returns {Watch} */
  watch(filter, onEvent) {
    const sub = this.pool.subscribe(this.relays, filter, { onevent: onEvent })
    const answers = this.relays.map((url) => ({ url, ok: true, message: '' }))
    return { refresh: async () => answers, close: () => sub.close() }
  }

  /** @param {NostrEvent} event @param {PublishOptions} opts */
  async publish(event, opts) {
    const relays = opts.only ? this.relays.filter((url) => opts.only?.includes(url)) : this.relays
    const results = await Promise.allSettled(
      this.pool.publish(relays, event, {
        onauth: async (template) => opts.auth(template),
        maxWait: opts.timeoutMs,
        abort: opts.signal,
      }),
    )
    return results.map((r, i) => {
      if (r.status === 'fulfilled') return { url: relays[i], ok: true, message: String(r.value ?? '') }
      const message = text(r.reason)
      return { url: relays[i], ok: message.startsWith('duplicate:'), message }
    })
  }

  /** @param {Record<string, unknown>} filter @param {{timeoutMs: number, signal?: AbortSignal}} opts */
  query(filter, opts) {
    return new Promise((resolve) => {
      /** @type {NostrEvent[]} */
      const found = []
      let sub = { close: () => {} }
      const done = () => {
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', done)
        sub.close()
        resolve(found)
      }
      const timer = setTimeout(done, opts.timeoutMs)
      opts.signal?.addEventListener('abort', done, { once: true })
      sub = this.pool.subscribe(this.relays, filter, {
        onevent: (e) => found.push(e),
        oneose: done, // the pool calls it once every relay sent EOSE (or timed out)
        onclose: done, // every relay closed it (or never connected)
        maxWait: opts.timeoutMs,
      })
    })
  }

  close() {
    // The site's pool: the site closes it.
  }
}

// Typed errors. Every error the client throws is a SigitError with a stable `code`: the DVM's own
// error codes (docs/protocol.md, "Error codes") as ProtocolError, and the client's own failures.
// `message` is for developers; `userMessage` (messages.js) is the sentence to show a person.
import { userMessage } from './messages.js'

/** The DVM's error codes (docs/protocol.md). New ones may appear; unknown codes are passed through. */
export const PROTOCOL_ERROR_CODES = Object.freeze([
  'bad_request', 'invalid_email', 'pow_too_low', 'stale_event', 'rate_limited', 'email_taken',
  'unknown_email', 'not_activated', 'no_session', 'session_expired', 'code_invalid', 'code_expired',
  'too_many_attempts', 'not_verified', 'pubkey_taken', 'already_activated', 'unknown_account',
  'change_expired', 'account_suspended', 'email_blocked', 'key_not_proven', 'internal_error',
])

/** The client's own codes (no DVM involved). */
export const CLIENT_ERROR_CODES = Object.freeze([
  'timeout', 'cancelled', 'relay_refused', 'discovery_failed', 'bad_reply', 'backup_invalid',
  'wrong_password', 'worker_failed', 'code_format', 'signer_failed',
])

export class SigitError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details]
   */
  constructor(code, message, details = {}) {
    super(message)
    this.name = 'SigitError'
    /** @type {string} */
    this.code = code
    /** @type {Record<string, unknown>} */
    this.details = details
  }

  /** A short sentence for the user, in English (`userMessage(err, {messages})` for another language). */
  get userMessage() {
    return userMessage(this)
  }
}

/** The DVM answered with `{"error": {code, message, ...details}}`. */
export class ProtocolError extends SigitError {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} details
   * @param {string} method
   */
  constructor(code, message, details, method) {
    super(code, message, details)
    this.name = 'ProtocolError'
    /** @type {string} */
    this.method = method
  }

  /** Seconds to wait, with `rate_limited`. @returns {number | undefined} */
  get retryAfterS() {
    return typeof this.details.retry_after_s === 'number' ? this.details.retry_after_s : undefined
  }

  /** Codes the user may still type, with `code_invalid`. @returns {number | undefined} */
  get attemptsLeft() {
    return typeof this.details.attempts_left === 'number' ? this.details.attempts_left : undefined
  }

  /** The PoW the method needs, with `pow_too_low`. @returns {number | undefined} */
  get requiredBits() {
    return typeof this.details.required_bits === 'number' ? this.details.required_bits : undefined
  }
}

/** No reply within the timeout (the request was republished meanwhile). Code `timeout`. */
export class TimeoutError extends SigitError {
  /** @param {string} message @param {Record<string, unknown>} [details] */
  constructor(message, details) {
    super('timeout', message, details)
    this.name = 'TimeoutError'
  }
}

/** The caller's AbortSignal fired (during mining or waiting). Code `cancelled`. */
export class CancelledError extends SigitError {
  /** @param {string} [message] */
  constructor(message = 'cancelled') {
    super('cancelled', message)
    this.name = 'CancelledError'
  }
}

/** No relay took the request (every one refused or was unreachable). Code `relay_refused`;
 * `details.relays` lists each relay's answer. */
export class RelayError extends SigitError {
  /** @param {string} message @param {Record<string, unknown>} [details] */
  constructor(message, details) {
    super('relay_refused', message, details)
    this.name = 'RelayError'
  }
}

/** The DVM could not be found or announced nothing usable. Code `discovery_failed`. */
export class DiscoveryError extends SigitError {
  /** @param {string} message @param {Record<string, unknown>} [details] */
  constructor(message, details) {
    super('discovery_failed', message, details)
    this.name = 'DiscoveryError'
  }
}

/** A reply that does not check out (signature, author, request id, decryption, JSON). Code `bad_reply`. */
export class ReplyError extends SigitError {
  /** @param {string} message */
  constructor(message) {
    super('bad_reply', message)
    this.name = 'ReplyError'
  }
}

/** A backup that does not open: `backup_invalid` (not an ncryptsec) or `wrong_password`. */
export class BackupError extends SigitError {
  /** @param {'backup_invalid' | 'wrong_password'} code @param {string} message */
  constructor(code, message) {
    super(code, message)
    this.name = 'BackupError'
  }
}

/** The client's worker (proof of work, backups) could not start or failed: a Content-Security-Policy
 * without `blob:` in `worker-src` (serve dist/worker.js and pass `workerUrl`), or no Worker at all.
 * Code `worker_failed`. */
export class WorkerError extends SigitError {
  /** @param {string} message @param {Record<string, unknown>} [details] */
  constructor(message, details) {
    super('worker_failed', message, details)
    this.name = 'WorkerError'
  }
}

/** What the user typed cannot be sent: `code_format` (a code is 6 or 16 digits). */
export class InputError extends SigitError {
  /** @param {'code_format'} code @param {string} message */
  constructor(code, message) {
    super(code, message)
    this.name = 'InputError'
  }
}

/** A signer (NIP-07 extension, NIP-46 bunker) refused, failed, or signed something else than
 * asked. Code `signer_failed`; `cause` holds the signer's own error. */
export class SignerError extends SigitError {
  /** @param {string} message @param {unknown} [cause] */
  constructor(message, cause) {
    super('signer_failed', message)
    this.name = 'SignerError'
    if (cause !== undefined) this.cause = cause
  }
}

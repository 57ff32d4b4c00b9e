/** The DVM's error codes (docs/protocol.md). New ones may appear; unknown codes are passed through. */
export const PROTOCOL_ERROR_CODES: readonly string[];
/** The client's own codes (no DVM involved). */
export const CLIENT_ERROR_CODES: readonly string[];
export class SigitError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     * @param {Record<string, unknown>} [details]
     */
    constructor(code: string, message: string, details?: Record<string, unknown>);
    /** @type {string} */
    code: string;
    /** @type {Record<string, unknown>} */
    details: Record<string, unknown>;
    /** A short sentence for the user, in English (`userMessage(err, {messages})` for another language). */
    get userMessage(): string;
}
/** The DVM answered with `{"error": {code, message, ...details}}`. */
export class ProtocolError extends SigitError {
    /**
     * @param {string} code
     * @param {string} message
     * @param {Record<string, unknown>} details
     * @param {string} method
     */
    constructor(code: string, message: string, details: Record<string, unknown>, method: string);
    /** @type {string} */
    method: string;
    /** Seconds to wait, with `rate_limited`. @returns {number | undefined} */
    get retryAfterS(): number | undefined;
    /** Codes the user may still type, with `code_invalid`. @returns {number | undefined} */
    get attemptsLeft(): number | undefined;
    /** The PoW the method needs, with `pow_too_low`. @returns {number | undefined} */
    get requiredBits(): number | undefined;
}
/** No reply within the timeout (the request was republished meanwhile). Code `timeout`. */
export class TimeoutError extends SigitError {
    /** @param {string} message @param {Record<string, unknown>} [details] */
    constructor(message: string, details?: Record<string, unknown>);
}
/** The caller's AbortSignal fired (during mining or waiting). Code `cancelled`. */
export class CancelledError extends SigitError {
    /** @param {string} [message] */
    constructor(message?: string);
}
/** No relay took the request (every one refused or was unreachable). Code `relay_refused`;
 * `details.relays` lists each relay's answer. */
export class RelayError extends SigitError {
    /** @param {string} message @param {Record<string, unknown>} [details] */
    constructor(message: string, details?: Record<string, unknown>);
}
/** The DVM could not be found or announced nothing usable. Code `discovery_failed`. */
export class DiscoveryError extends SigitError {
    /** @param {string} message @param {Record<string, unknown>} [details] */
    constructor(message: string, details?: Record<string, unknown>);
}
/** A reply that does not check out (signature, author, request id, decryption, JSON). Code `bad_reply`. */
export class ReplyError extends SigitError {
    /** @param {string} message */
    constructor(message: string);
}
/** A backup that does not open: `backup_invalid` (not an ncryptsec) or `wrong_password`. */
export class BackupError extends SigitError {
    /** @param {'backup_invalid' | 'wrong_password'} code @param {string} message */
    constructor(code: "backup_invalid" | "wrong_password", message: string);
}
/** The client's worker (proof of work, backups) could not start or failed: a Content-Security-Policy
 * without `blob:` in `worker-src` (serve dist/worker.js and pass `workerUrl`), or no Worker at all.
 * Code `worker_failed`. */
export class WorkerError extends SigitError {
    /** @param {string} message @param {Record<string, unknown>} [details] */
    constructor(message: string, details?: Record<string, unknown>);
}
/** What the user typed cannot be sent: `code_format` (a code is 6 or 16 digits). */
export class InputError extends SigitError {
    /** @param {'code_format'} code @param {string} message */
    constructor(code: "code_format", message: string);
}
/** A signer (NIP-07 extension, NIP-46 bunker) refused, failed, or signed something else than
 * asked. Code `signer_failed`; `cause` holds the signer's own error. */
export class SignerError extends SigitError {
    /** @param {string} message @param {unknown} [cause] */
    constructor(message: string, cause?: unknown);
    cause: unknown;
}

// Messages for people, one per error code, apart from the developer's `message` (which names
// methods, relays and keys). English is built in; a site translates by passing its own catalog
// (the same keys) to userMessage. An entry is a string with {placeholders} or a function.

/**
 * @typedef {{attempts_left?: number, retry_after_s?: number, retry_after_min?: number, required_bits?: number}} MessageVars
 * @typedef {Record<string, string | ((vars: MessageVars) => string)>} MessageCatalog
 */

/** @type {Readonly<MessageCatalog>} */
export const MESSAGES_EN = Object.freeze({
  // The DVM's codes (docs/protocol.md, "Error codes").
  bad_request: 'Something went wrong on this page. Please reload it and try again.',
  invalid_email: 'That email address does not look right. Please check it.',
  pow_too_low: 'The service is very busy right now. Please try again in a few minutes.',
  stale_event: "Your device's clock seems to be wrong. Please set the right date and time, then try again.",
  rate_limited: (v) =>
    v.retry_after_min === undefined
      ? 'Too many tries for this address. Please wait a while and try again.'
      : `Too many tries for this address. Please try again in ${v.retry_after_min} min.`,
  email_taken: 'This email address already has an account. Please log in instead.',
  unknown_email: 'No account uses this email address. Please sign up instead.',
  not_activated: 'The signup for this address was never finished. Please sign up again.',
  no_session: 'This step has expired or was already done. Please start again.',
  session_expired: 'This signup took too long. Please start again.',
  code_invalid: (v) =>
    v.attempts_left === undefined
      ? 'That code is not right. Please check it.'
      : `That code is not right. ${v.attempts_left} ${v.attempts_left === 1 ? 'try' : 'tries'} left.`,
  code_expired: 'That code has expired. Please ask for a new one.',
  too_many_attempts: 'Too many wrong codes. Please start again to get a new code.',
  not_verified: 'Please enter the code from the email first.',
  pubkey_taken: 'This key already belongs to another account.',
  already_activated: 'This account is already set up. Please log in instead.',
  unknown_account: 'You are no longer signed in. Please log in again.',
  change_expired: 'The email change took too long. Please start it again.',
  account_suspended: 'This account is suspended. Please contact support.',
  email_blocked: 'This email address cannot be used here. Please use another one.',
  key_not_proven: 'Something went wrong on this page. Please reload it and try again.',
  internal_error: 'The service had a problem. Please try again later.',
  // The client's own codes.
  timeout: 'The service did not answer in time. Please try again.',
  cancelled: 'Cancelled.',
  relay_refused: 'The service cannot be reached right now. Please check your connection and try again.',
  discovery_failed: 'The account service cannot be reached right now. Please try again later.',
  bad_reply: 'The service sent an answer this page cannot read. Please try again.',
  backup_invalid: 'Your saved key cannot be read. Please contact support.',
  wrong_password: 'That password is not right. Please try again.',
  worker_failed: 'This page could not start its background work. Please reload it or use another browser.',
  code_format: 'Please enter the 6 or 16 digits from the email.',
  signer_failed: 'Your signing app did not sign the request. Please try again.',
  unknown: 'Something went wrong. Please try again.',
})

/**
 * A short sentence for the person in front of the page, for an error (any error: a SigitError's
 * `code` picks the sentence) or a code, from `messages` (a site's catalog, e.g. a translation)
 * or else English.
 * @param {unknown} error a SigitError, any other error, or an error code
 * @param {{messages?: MessageCatalog}} [opts]
 * @returns {string}
 */
export function userMessage(error, opts = {}) {
  const err = /** @type {any} */ (error)
  const code = typeof error === 'string' ? error : typeof err?.code === 'string' ? err.code : 'unknown'
  const details = typeof err === 'object' && err !== null && typeof err.details === 'object' ? err.details ?? {} : {}
  /** @type {MessageVars} */
  const vars = {}
  for (const name of /** @type {const} */ (['attempts_left', 'retry_after_s', 'required_bits'])) {
    if (typeof details[name] === 'number') vars[name] = details[name]
  }
  if (vars.retry_after_s !== undefined) vars.retry_after_min = Math.max(1, Math.ceil(vars.retry_after_s / 60))
  const entry = opts.messages?.[code] ?? MESSAGES_EN[code] ?? opts.messages?.unknown ?? MESSAGES_EN.unknown
  if (typeof entry === 'function') return entry(vars)
  return entry.replace(/\{(\w+)\}/g, (whole, name) => {
    const value = /** @type {Record<string, number | undefined>} */ (vars)[name]
    return value === undefined ? whole : String(value)
  })
}

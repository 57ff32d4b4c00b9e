/**
 * A short sentence for the person in front of the page, for an error (any error: a SigitError's
 * `code` picks the sentence) or a code, from `messages` (a site's catalog, e.g. a translation)
 * or else English.
 * @param {unknown} error a SigitError, any other error, or an error code
 * @param {{messages?: MessageCatalog}} [opts]
 * @returns {string}
 */
export function userMessage(error: unknown, opts?: {
    messages?: MessageCatalog;
}): string;
/**
 * @typedef {{attempts_left?: number, retry_after_s?: number, retry_after_min?: number, required_bits?: number}} MessageVars
 * @typedef {Record<string, string | ((vars: MessageVars) => string)>} MessageCatalog
 */
/** @type {Readonly<MessageCatalog>} */
export const MESSAGES_EN: Readonly<MessageCatalog>;
export type MessageVars = {
    attempts_left?: number;
    retry_after_s?: number;
    retry_after_min?: number;
    required_bits?: number;
};
export type MessageCatalog = Record<string, string | ((vars: MessageVars) => string)>;

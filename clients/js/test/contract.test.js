// What the client knows of the contract matches the daemon in this repository: the PoW minimums
// of every method (DEFAULT_POW_BITS against the announcement the daemon builds with its default
// settings, and dvm.protocol.intake.DEFAULT_POW_BITS), and every error code (dvm.errors); each code,
// the DVM's and the client's own, has a message for people. Also: codes as users type them.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import {
  CLIENT_ERROR_CODES,
  DEFAULT_POW_BITS,
  InputError,
  MESSAGES_EN,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  SigitError,
  normalizeCode,
  userMessage,
} from '../src/node.js'
import { PYTHON, REPO } from './stack.js'

const DAEMON = `
import orjson
from dvm.config import ServiceSettings
from dvm.errors import error_codes
from dvm.nostr.keys import SecretKey
from dvm.protocol.announcement import announcement
from dvm.protocol.intake import DEFAULT_POW_BITS
event = announcement(SecretKey.generate(), ServiceSettings().rules().intake, "n", "a", 1767225600)
print(orjson.dumps({
    "announced": orjson.loads(event.content)["pow_bits"],
    "intake": {str(k): v for k, v in DEFAULT_POW_BITS.items()},
    "codes": sorted(error_codes()),
}).decode())
`
const daemon = JSON.parse(execFileSync(PYTHON, ['-c', DAEMON], { cwd: REPO }).toString())

test("the client's PoW minimums are the daemon's announced defaults, for every method it announces", () => {
  assert.ok(Object.keys(daemon.announced).length >= 13)
  for (const [method, bits] of Object.entries(daemon.announced)) {
    assert.equal(/** @type {Record<string, number>} */ (DEFAULT_POW_BITS)[method], bits, method)
  }
  for (const [method, bits] of Object.entries(daemon.intake)) {
    assert.equal(/** @type {Record<string, number>} */ (DEFAULT_POW_BITS)[method], bits, method)
  }
  // And nothing the client calls lacks a minimum (register was missing: mined at 0 bits, dropped).
  for (const method of ['request_account', 'register', 'request_login', 'verify_code', 'activate', 'resend_code', 'revoke_sessions']) {
    assert.ok(/** @type {Record<string, number>} */ (DEFAULT_POW_BITS)[method] >= 12, method)
  }
})

test("every error code of the daemon is in PROTOCOL_ERROR_CODES, and every code has a message for people", () => {
  for (const code of daemon.codes) assert.ok(PROTOCOL_ERROR_CODES.includes(code), code)
  for (const code of ['account_suspended', 'email_blocked', 'key_not_proven']) assert.ok(PROTOCOL_ERROR_CODES.includes(code), code)
  for (const code of [...PROTOCOL_ERROR_CODES, ...CLIENT_ERROR_CODES, 'unknown']) {
    const text = userMessage(code)
    assert.ok(code in MESSAGES_EN, code)
    assert.ok(text.length > 5 && text.length < 120, `${code}: ${text}`)
    assert.doesNotMatch(text, /[_{}[\]]|\b[0-9a-f]{16,}\b|ws:|wss:/, `${code}: no codes, keys or URLs for people`)
  }
})

test('user messages are separate from the developer detail, take the details, and a catalog translates them', () => {
  const err = new ProtocolError('code_invalid', 'That code is not correct.', { attempts_left: 3 }, 'verify_code')
  assert.equal(err.userMessage, 'That code is not right. 3 tries left.')
  const limited = new ProtocolError('rate_limited', 'x', { retry_after_s: 61 }, 'resend_code')
  assert.equal(limited.userMessage, 'Too many tries for this address. Please try again in 2 min.')
  const de = { code_invalid: 'Der Code stimmt nicht. Noch {attempts_left} Versuche.', unknown: 'Etwas ging schief.' }
  assert.equal(userMessage(err, { messages: de }), 'Der Code stimmt nicht. Noch 3 Versuche.')
  assert.equal(userMessage(new SigitError('timeout', 'no reply to request_account within 60000 ms'), { messages: de }), MESSAGES_EN.timeout)
  assert.equal(userMessage(new Error('anything')), MESSAGES_EN.unknown)
  assert.equal(userMessage(new ProtocolError('some_new_code', 'x', {}, 'status'), { messages: de }), 'Etwas ging schief.')
})

test('codes are 6 or 16 digits, spaces ignored; anything else is InputError code_format before sending', () => {
  assert.equal(normalizeCode(' 123 456 '), '123456')
  assert.equal(normalizeCode('1234 5678 9012 3456'), '1234567890123456')
  assert.equal(normalizeCode(123456), '123456')
  for (const bad of ['12345', '1234567', '12345a', '1234 5678 9012', '1234-5678-9012-3456', '']) {
    assert.throws(() => normalizeCode(bad), (err) => err instanceof InputError && err.code === 'code_format', bad)
  }
})

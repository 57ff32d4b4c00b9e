"""The one exception hierarchy of sigit-dvm.

Everything the project raises on purpose derives from :class:`DVMError`. Two branches matter:

* :class:`NostrError` -- malformed or forged wire data found by the pure Nostr layer (bad hex, bad
  signature, bad MAC...). The pipeline turns these into silence or a ``bad_request`` reply.
* :class:`RequestError` -- a refusal the client is told about. Each subclass maps to exactly one
  stable machine ``code`` from the protocol contract (``docs/protocol.md``).
"""

from __future__ import annotations

from typing import ClassVar


class DVMError(Exception):
    """Root of every error sigit-dvm raises deliberately."""


class ConfigError(DVMError):
    """A setting is missing, malformed or out of range."""


class AdminError(DVMError):
    """An admin command that cannot be done: not found, wrong state, ambiguous prefix (exit 1)."""


class InvalidValue(AdminError):
    """A value typed on the command line that can never be right (an address that is no address):
    bad usage, exit 2, as click's own refusals."""


# --- Nostr layer: the input is malformed or forged --------------------------------------------


class NostrError(DVMError):
    """Wire data that does not follow the NIPs."""


class EncodingError(NostrError):
    """Bad hex, base64 or bech32, or a value of the wrong length."""


class InvalidKey(NostrError):
    """A secret or public key that is not a valid secp256k1 key."""


class InvalidEvent(NostrError):
    """An event that is not a canonical NIP-01 event (shape, types, id mismatch, sizes)."""


class InvalidSignature(InvalidEvent):
    """A BIP-340 signature that does not verify for the event id and pubkey."""


class Unopenable(InvalidEvent):
    """An event whose opening raised an error no check expected: a bug met by someone's input,
    not a verdict on it. The event is dropped unanswered like any invalid one, and the daemon
    logs it; the batch around it and the stages after it go on."""


class DecryptionError(NostrError):
    """A NIP-44 or NIP-04 payload that cannot be decrypted."""


class UnsupportedVersion(DecryptionError):
    """A NIP-44 payload whose version byte (or leading ``#``) we do not speak."""


class InvalidMac(DecryptionError):
    """A NIP-44 payload whose HMAC does not match: tampered or for another key."""


class InvalidPadding(DecryptionError):
    """A decrypted payload whose length prefix or padding is inconsistent."""


class PayloadSize(DecryptionError):
    """A payload or plaintext outside the sizes the NIP allows (or we accept)."""


class InsufficientPow(NostrError):
    """An event whose NIP-13 proof of work is missing, uncommitted or too low."""


# --- Protocol layer: refusals the client is told about ----------------------------------------


class RequestError(DVMError):
    """A request refused with a stable machine code and a human message.

    Subclasses set ``code``; the message may be specialised per instance but never carries a
    secret (no code, entropy, backup or decrypted content).
    """

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "The service could not handle this request."

    def __init__(self, message: str | None = None, **details: int) -> None:
        self.message = message or self.default_message
        self.details = details  # small integers only, e.g. retry_after_s, attempts_left
        super().__init__(self.message)


class BadRequest(RequestError):
    code = "bad_request"
    default_message = "The request is malformed: unknown method, or a missing, unknown or invalid field."


class InvalidEmail(RequestError):
    code = "invalid_email"
    default_message = "That email address is not valid."


class PowTooLow(RequestError):
    code = "pow_too_low"
    default_message = "The request's proof of work (NIP-13) is missing or below the required difficulty."


class StaleEvent(RequestError):
    code = "stale_event"
    default_message = "The request's created_at is too far from the service's clock; sign it again."


class RateLimited(RequestError):
    code = "rate_limited"
    default_message = "Too many requests; try again later."


class EmailTaken(RequestError):
    code = "email_taken"
    default_message = "An account with this email already exists. Log in instead."


class UnknownEmail(RequestError):
    code = "unknown_email"
    default_message = "No account uses this email address. Sign up instead."


class NotActivated(RequestError):
    code = "not_activated"
    default_message = "This account's signup was never finished. Request an account again to finish it."


class NoSession(RequestError):
    code = "no_session"
    default_message = "There is no open session for this key. Start again with a new request."


class SessionExpired(RequestError):
    code = "session_expired"
    default_message = "This session has expired. Start again with a new request."


class CodeInvalid(RequestError):
    code = "code_invalid"
    default_message = "That code is not correct."


class CodeExpired(RequestError):
    code = "code_expired"
    default_message = "That code has expired. Ask for a new one."


class TooManyAttempts(RequestError):
    code = "too_many_attempts"
    default_message = "Too many wrong codes: this session is locked. Start again with a new request."


class NotVerified(RequestError):
    code = "not_verified"
    default_message = "Verify the emailed code before activating the account."


class PubkeyTaken(RequestError):
    code = "pubkey_taken"
    default_message = "This public key already belongs to another account."


class KeyNotProven(RequestError):
    code = "key_not_proven"
    default_message = (
        "A request that names a public key must be signed by it: seal it with that key (see the protocol)."
    )


class AlreadyActivated(RequestError):
    code = "already_activated"
    default_message = "This account is already activated with another key or backup."


class UnknownAccount(RequestError):
    code = "unknown_account"
    default_message = (
        "No activated account uses this key. Account methods must be signed by the account's key."
    )


class ChangeExpired(RequestError):
    code = "change_expired"
    default_message = "The email change was not confirmed in time. Start it again."


class AccountSuspended(RequestError):
    code = "account_suspended"
    default_message = "This account is suspended. Contact the service's support."


class EmailBlocked(RequestError):
    code = "email_blocked"
    default_message = "This email address or its domain cannot be used with this service."


class InternalError(RequestError):
    code = "internal_error"
    default_message = "The service failed to handle this request; try again."


class UndeclaredTransition(InternalError):
    """The account machine took a step its transition table does not name: a bug, refused."""


def error_codes() -> dict[str, type[RequestError]]:
    """Every protocol error code and its class: the list ``docs/protocol.md`` must document."""
    found: dict[str, type[RequestError]] = {}
    pending: list[type[RequestError]] = [RequestError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not RequestError:
            found[cls.code] = cls
    return found

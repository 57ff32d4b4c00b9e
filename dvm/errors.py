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

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

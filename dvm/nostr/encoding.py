"""Strict decoders for the hex and base64 strings found on the wire.

Nostr fixes lengths and case (lower-case hex), so anything else is rejected with a typed error
instead of being normalised: a lenient decoder would let two spellings share one id.
"""

from __future__ import annotations

import base64
import binascii

from dvm.errors import EncodingError

_LOWER_HEX = frozenset("0123456789abcdef")


def decode_hex(value: object, nbytes: int, what: str) -> bytes:
    """Decode lower-case hex of exactly ``nbytes`` bytes, or raise :class:`EncodingError`."""
    if not isinstance(value, str):
        raise EncodingError(f"{what} must be a hex string")
    if len(value) != 2 * nbytes:
        raise EncodingError(f"{what} must be {2 * nbytes} hex characters, got {len(value)}")
    if not _LOWER_HEX.issuperset(value):
        raise EncodingError(f"{what} must be lower-case hex")
    return bytes.fromhex(value)


def is_lower_hex(value: object, nbytes: int) -> bool:
    """True if ``value`` is lower-case hex of exactly ``nbytes`` bytes."""
    return isinstance(value, str) and len(value) == 2 * nbytes and _LOWER_HEX.issuperset(value)


def is_digits(value: str) -> bool:
    """True for one or more ASCII digits: what ``int`` takes. ``str.isdigit`` alone also takes
    ``"²"`` and other digits ``int`` refuses (one such NIP-40 tag once stopped the daemon)."""
    return value.isascii() and value.isdigit()


def decode_base64(value: str, what: str) -> bytes:
    """Decode standard, padded base64; reject other alphabets, whitespace and bad padding."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise EncodingError(f"{what} is not valid base64") from exc


def encode_base64(data: bytes) -> str:
    """Standard padded base64, as NIP-44 and NIP-04 use."""
    return base64.b64encode(data).decode("ascii")

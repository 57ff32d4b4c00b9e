"""NIP-19 bech32 strings (npub, nsec) and NIP-49 ncryptsec, on pynostr's reference bech32 code.

pynostr ships Pieter Wuille's reference implementation without BIP-173's 90-character cap, which
NIP-49 needs (an ``ncryptsec`` is 162 characters). We add the Nostr rules on top: plain bech32
(never bech32m), the expected prefix, and the exact payload length.
"""

from __future__ import annotations

from pynostr.bech32 import Encoding, bech32_decode, bech32_encode, convertbits

from dvm.errors import EncodingError

NCRYPTSEC_BYTES = 91
NCRYPTSEC_VERSION = 0x02
MAX_BECH32_CHARS = 5000


def encode(hrp: str, data: bytes) -> str:
    """Encode bytes under a human-readable prefix."""
    words = convertbits(data, 8, 5, True)
    if words is None:  # pragma: no cover - cannot happen for bytes
        raise EncodingError("cannot convert to 5-bit words")
    return str(bech32_encode(hrp, words, Encoding.BECH32))


def decode(hrp: str, value: str, nbytes: int | None = None) -> bytes:
    """Decode a bech32 string that must carry prefix ``hrp`` (and ``nbytes`` bytes, if given)."""
    if not isinstance(value, str) or len(value) > MAX_BECH32_CHARS:
        raise EncodingError(f"not a {hrp} string")
    got_hrp, words, spec = bech32_decode(value)
    if got_hrp is None or words is None or spec != Encoding.BECH32:
        raise EncodingError(f"not a valid bech32 {hrp} string")
    if got_hrp != hrp:
        raise EncodingError(f"expected prefix {hrp!r}, got {got_hrp!r}")
    data = convertbits(words, 5, 8, False)
    if data is None:
        raise EncodingError(f"{hrp} string has invalid padding")
    if nbytes is not None and len(data) != nbytes:
        raise EncodingError(f"{hrp} must hold {nbytes} bytes, got {len(data)}")
    return bytes(data)


def npub(pubkey: bytes) -> str:
    return encode("npub", pubkey)


def nsec(secret: bytes) -> str:
    return encode("nsec", secret)


def decode_npub(value: str) -> bytes:
    return decode("npub", value, 32)


def decode_nsec(value: str) -> bytes:
    return decode("nsec", value, 32)


def check_ncryptsec(value: str) -> bytes:
    """Check the NIP-49 shape (prefix, 91 bytes, version 0x02) and return the raw bytes."""
    data = decode("ncryptsec", value, NCRYPTSEC_BYTES)
    if data[0] != NCRYPTSEC_VERSION:
        raise EncodingError(f"unsupported ncryptsec version {data[0]}")
    return data

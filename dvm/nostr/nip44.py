"""NIP-44 version 2 encryption (secp256k1 ECDH, HKDF-SHA256, ChaCha20, HMAC-SHA256).

Written on ``cryptography`` because pynostr lacks NIP-44. Only the v2 format of the official
vectors is produced or accepted: the longer length prefix proposed upstream in 2026 is neither
emitted nor decoded (a zero length prefix is refused as bad padding).
"""

from __future__ import annotations

import hmac
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from dvm.errors import (
    DecryptionError,
    EncodingError,
    InvalidMac,
    InvalidPadding,
    PayloadSize,
    UnsupportedVersion,
)
from dvm.nostr.encoding import decode_base64, encode_base64

VERSION = 2
SALT = b"nip44-v2"
MIN_PLAINTEXT_BYTES = 1
MAX_PLAINTEXT_BYTES = 65535
_MIN_PAYLOAD_CHARS = 132
_MAX_PAYLOAD_CHARS = 87472
_MIN_DATA_BYTES = 99
_MAX_DATA_BYTES = 65603
_COUNTER0 = b"\x00\x00\x00\x00"


def conversation_key(shared_x: bytes) -> bytes:
    """HKDF-extract of the raw ECDH x coordinate with salt ``nip44-v2``; symmetric per pair."""
    return HKDF.extract(hashes.SHA256(), SALT, shared_x)


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """``(chacha_key, chacha_nonce, hmac_key)`` expanded from the conversation key and nonce."""
    if len(conv_key) != 32:
        raise DecryptionError("conversation key must be 32 bytes")
    if len(nonce) != 32:
        raise DecryptionError("nonce must be 32 bytes")
    keys = HKDFExpand(hashes.SHA256(), 76, nonce).derive(conv_key)
    return keys[:32], keys[32:44], keys[44:76]


def calc_padded_len(unpadded_len: int) -> int:
    """Length after NIP-44 padding (power-of-two based chunks, minimum 32)."""
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def pad(plaintext: bytes) -> bytes:
    """Big-endian u16 length prefix, the plaintext, then zeros up to the padded length."""
    size = len(plaintext)
    if not MIN_PLAINTEXT_BYTES <= size <= MAX_PLAINTEXT_BYTES:
        raise PayloadSize(f"plaintext must be {MIN_PLAINTEXT_BYTES}..{MAX_PLAINTEXT_BYTES} bytes, got {size}")
    return size.to_bytes(2, "big") + plaintext + bytes(calc_padded_len(size) - size)


def unpad(padded: bytes) -> bytes:
    """Inverse of :func:`pad`; refuses any inconsistency in prefix or padding length."""
    if len(padded) < 2:
        raise InvalidPadding("padded plaintext too short")
    size = int.from_bytes(padded[:2], "big")
    if size < MIN_PLAINTEXT_BYTES or len(padded) != 2 + calc_padded_len(size):
        raise InvalidPadding("invalid padding")
    return padded[2 : 2 + size]


def _chacha20(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 takes a 16-byte nonce: 32-bit little-endian counter (0) + 96-bit nonce.
    return Cipher(algorithms.ChaCha20(key, _COUNTER0 + nonce12), mode=None).encryptor().update(data)


def encrypt(plaintext: str, conv_key: bytes, nonce: bytes) -> str:
    """Encrypt UTF-8 text into a base64 v2 payload. ``nonce`` must be 32 fresh random bytes."""
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    ciphertext = _chacha20(chacha_key, chacha_nonce, pad(plaintext.encode("utf-8")))
    mac = hmac.digest(hmac_key, nonce + ciphertext, sha256)
    return encode_base64(bytes([VERSION]) + nonce + ciphertext + mac)


def decode_payload(payload: str) -> tuple[bytes, bytes, bytes]:
    """Split a payload into ``(nonce, ciphertext, mac)`` after the version and size checks."""
    if not payload or payload[0] == "#":
        raise UnsupportedVersion("unknown NIP-44 encryption version")
    if not _MIN_PAYLOAD_CHARS <= len(payload) <= _MAX_PAYLOAD_CHARS:
        raise PayloadSize(f"NIP-44 payload must be {_MIN_PAYLOAD_CHARS}..{_MAX_PAYLOAD_CHARS} characters")
    try:
        data = decode_base64(payload, "NIP-44 payload")
    except EncodingError as exc:
        raise DecryptionError(str(exc)) from exc
    if not _MIN_DATA_BYTES <= len(data) <= _MAX_DATA_BYTES:
        raise PayloadSize("NIP-44 decoded payload has an invalid size")
    if data[0] != VERSION:
        raise UnsupportedVersion(f"unknown NIP-44 encryption version {data[0]}")
    return data[1:33], data[33:-32], data[-32:]


def decrypt(payload: str, conv_key: bytes) -> str:
    """Authenticate and decrypt a base64 v2 payload into text."""
    nonce, ciphertext, mac = decode_payload(payload)
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    if not hmac.compare_digest(mac, hmac.digest(hmac_key, nonce + ciphertext, sha256)):
        raise InvalidMac("invalid MAC")
    plaintext = unpad(_chacha20(chacha_key, chacha_nonce, ciphertext))
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionError("plaintext is not valid UTF-8") from exc

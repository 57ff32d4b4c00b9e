"""NIP-04 encryption (AES-256-CBC keyed with the raw ECDH x), accepted for old clients only.

NIP-04 has no authentication: a tampered payload usually fails the PKCS#7 check but is not
guaranteed to. We accept it because the SIGit flow's old clients speak it, and answer in kind.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dvm.errors import DecryptionError, EncodingError, InvalidPadding, PayloadSize
from dvm.nostr.encoding import decode_base64, encode_base64

SEPARATOR = "?iv="
MAX_PAYLOAD_CHARS = 128 * 1024


def encrypt(plaintext: str, shared_x: bytes, iv: bytes) -> str:
    """``base64(ciphertext) + "?iv=" + base64(iv)``; ``iv`` must be 16 fresh random bytes."""
    if len(iv) != 16:
        raise ValueError("NIP-04 iv must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return f"{encode_base64(ciphertext)}{SEPARATOR}{encode_base64(iv)}"


def decrypt(payload: str, shared_x: bytes) -> str:
    """Decrypt a NIP-04 payload; raise :class:`DecryptionError` subclasses on any defect."""
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise PayloadSize("NIP-04 payload too long")
    body, sep, iv_b64 = payload.partition(SEPARATOR)
    if not sep:
        raise DecryptionError("NIP-04 payload lacks '?iv='")
    try:
        ciphertext = decode_base64(body, "NIP-04 ciphertext")
        iv = decode_base64(iv_b64, "NIP-04 iv")
    except EncodingError as exc:
        raise DecryptionError(str(exc)) from exc
    if len(iv) != 16:
        raise DecryptionError("NIP-04 iv must be 16 bytes")
    if not ciphertext or len(ciphertext) % 16:
        raise DecryptionError("NIP-04 ciphertext must be a non-empty multiple of 16 bytes")
    decryptor = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
        return plaintext.decode("utf-8")
    except ValueError as exc:  # bad PKCS#7 padding or UnicodeDecodeError
        raise InvalidPadding("NIP-04 padding or text encoding invalid") from exc

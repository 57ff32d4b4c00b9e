"""secp256k1 keys on libsecp256k1 (through coincurve's bundled library and cffi bindings).

Two library traps are avoided on purpose (see DESIGN.md, 2b):

* ``coincurve.PrivateKey.ecdh`` hashes the shared point; NIP-04 and NIP-44 need the raw x
  coordinate. We call ``secp256k1_ecdh`` with a hash callback that copies x, which keeps the
  library's constant-time scalar multiplication (``PublicKey.multiply`` is not constant time).
* ``PrivateKey.sign_schnorr`` rebuilds the keypair and re-verifies on every call (about 4x the
  cost); :class:`SecretKey` builds its ``secp256k1_keypair`` once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from dvm.errors import EncodingError, InvalidKey
from dvm.nostr.encoding import decode_hex

Rng = Callable[[int], bytes]
"""A source of random bytes: ``rng(n)`` returns ``n`` bytes. Defaults to ``os.urandom``."""

_CTX = GLOBAL_CONTEXT.ctx


def _copy_x(output: object, x32: object, _y32: object, _data: object) -> int:
    """ECDH 'hash' that returns the shared point's x coordinate unchanged."""
    ffi.memmove(output, x32, 32)
    return 1


_COPY_X = ffi.callback("int(unsigned char *, const unsigned char *, const unsigned char *, void *)")(_copy_x)


def _parse_xonly(pubkey: bytes) -> object:
    """Parse a 32-byte x-only key into a ``secp256k1_xonly_pubkey`` (checks it is on the curve)."""
    if len(pubkey) != 32:
        raise InvalidKey("public key must be 32 bytes")
    parsed = ffi.new("secp256k1_xonly_pubkey *")
    if not lib.secp256k1_xonly_pubkey_parse(_CTX, parsed, pubkey):
        raise InvalidKey("public key is not a point on secp256k1")
    return parsed


def validate_pubkey(pubkey: bytes) -> bytes:
    """Return ``pubkey`` if it is a valid BIP-340 x-only key, else raise :class:`InvalidKey`."""
    _parse_xonly(pubkey)
    return pubkey


def parse_pubkey_hex(value: object, what: str = "pubkey") -> bytes:
    """Decode and validate a lower-case hex x-only public key."""
    try:
        raw = decode_hex(value, 32, what)
    except EncodingError as exc:
        raise InvalidKey(str(exc)) from exc
    return validate_pubkey(raw)


def verify_schnorr(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """BIP-340 verification of a 64-byte signature over a 32-byte message."""
    if len(signature) != 64 or len(message) != 32:
        return False
    try:
        parsed = _parse_xonly(pubkey)
    except InvalidKey:
        return False
    return bool(lib.secp256k1_schnorrsig_verify(_CTX, signature, message, 32, parsed))


class SecretKey:
    """A secp256k1 secret with its keypair prebuilt: BIP-340 signing and raw-x ECDH."""

    __slots__ = ("_keypair", "_rng", "_secret", "pubkey")

    def __init__(self, secret: bytes, rng: Rng = os.urandom) -> None:
        if len(secret) != 32 or not lib.secp256k1_ec_seckey_verify(_CTX, secret):
            raise InvalidKey("secret key must be 32 bytes in [1, n-1]")
        keypair = ffi.new("secp256k1_keypair *")
        if not lib.secp256k1_keypair_create(_CTX, keypair, secret):
            raise InvalidKey("secret key rejected by libsecp256k1")
        xonly = ffi.new("secp256k1_xonly_pubkey *")
        lib.secp256k1_keypair_xonly_pub(_CTX, xonly, ffi.NULL, keypair)
        out = ffi.new("unsigned char[32]")
        lib.secp256k1_xonly_pubkey_serialize(_CTX, out, xonly)
        self._secret = bytes(secret)
        self._keypair = keypair
        self._rng = rng
        self.pubkey: bytes = bytes(ffi.buffer(out, 32))

    @classmethod
    def generate(cls, rng: Rng = os.urandom) -> SecretKey:
        """A fresh random key (rejection-sampled, so always valid)."""
        while True:
            candidate = rng(32)
            if len(candidate) == 32 and lib.secp256k1_ec_seckey_verify(_CTX, candidate):
                return cls(candidate, rng)

    @classmethod
    def from_hex(cls, value: str, rng: Rng = os.urandom) -> SecretKey:
        """Parse 64 lower-case hex characters."""
        try:
            raw = decode_hex(value.strip().lower(), 32, "secret key")
        except EncodingError as exc:
            raise InvalidKey(str(exc)) from exc
        return cls(raw, rng)

    @property
    def pubkey_hex(self) -> str:
        return self.pubkey.hex()

    def secret_bytes(self) -> bytes:
        """The raw secret; only for writing a key file. Never log it."""
        return self._secret

    def sign(self, message: bytes) -> bytes:
        """BIP-340 signature of a 32-byte message, with fresh auxiliary randomness."""
        if len(message) != 32:
            raise ValueError("BIP-340 signs 32-byte messages")
        signature = ffi.new("unsigned char[64]")
        if not lib.secp256k1_schnorrsig_sign32(_CTX, signature, message, self._keypair, self._rng(32)):
            raise InvalidKey("signing failed")
        return bytes(ffi.buffer(signature, 64))

    def shared_x(self, peer_pubkey: bytes) -> bytes:
        """The x coordinate of ``secret * peer``: the unhashed ECDH secret of NIP-04 and NIP-44."""
        if len(peer_pubkey) != 32:
            raise InvalidKey("public key must be 32 bytes")
        point = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_ec_pubkey_parse(_CTX, point, b"\x02" + peer_pubkey, 33):
            raise InvalidKey("public key is not a point on secp256k1")
        out = ffi.new("unsigned char[32]")
        if not lib.secp256k1_ecdh(_CTX, out, point, self._secret, _COPY_X, ffi.NULL):
            raise InvalidKey("ECDH failed")
        return bytes(ffi.buffer(out, 32))

    def __repr__(self) -> str:  # never show the secret
        return f"SecretKey(pubkey={self.pubkey_hex})"

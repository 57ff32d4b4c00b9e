"""Mail template values sealed at rest: a code is never in the database in clear.

``mail.params`` (a code among them while the mail is queued or retrying) is stored as
``sealed1:`` + base64(nonce || ChaCha20-Poly1305 ciphertext) of its JSON, under a key derived
from the code secret with HKDF-SHA256, the row's message token as associated data (a sealed value
moved to another row does not open). It is opened only to build the message. A database file or
backup alone reveals no code; with the code secret too it could, as it could forge codes anyway.
Changing the code secret leaves queued mail unopenable: those rows are dead-lettered (their codes
were void with the old secret anyway). Rows queued by a version before sealing hold plain JSON and
are still read.
"""

from __future__ import annotations

import base64
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dvm.errors import DVMError

PREFIX = "sealed1:"
_INFO = b"sigit-dvm mail params v1"
_NONCE_BYTES = 12

Params = dict[str, str | int]


class UnsealError(DVMError):
    """Sealed params that do not open: another code secret, or a damaged value."""


class ParamsSeal:
    """Seals and opens one row's template values with a key derived from the code secret."""

    def __init__(self, code_secret: bytes) -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(code_secret)
        self._aead = ChaCha20Poly1305(key)

    def seal(self, params: Params, token: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(params), token.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, token: str) -> Params:
        if not stored.startswith(PREFIX):
            return _plain(stored)  # queued before params were sealed
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], token.encode())
        except (ValueError, InvalidTag) as exc:
            reason = "the mail's template values do not open (was the code secret changed?)"
            raise UnsealError(reason) from exc
        return _plain(plain)


def _plain(data: str | bytes) -> Params:
    try:
        params = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnsealError("the mail's template values are not valid JSON") from exc
    if not isinstance(params, dict):
        raise UnsealError("the mail's template values are not an object")
    return params

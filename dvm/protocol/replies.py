"""Reply events: NIP-90 shaped results, encrypted to the requester in the request's scheme.

A reply has kind ``request_kind + 1000`` and tags ``["e", request_id]``, ``["p", requester]`` and
a NIP-40 ``["expiration", ...]``. The content is JSON, encrypted, with an ``["encrypted"]`` tag:
``{"result": {...}}`` or ``{"error": {"code": ..., "message": ..., <details>}}``, followed by spaces
up to ``PAD_BYTES`` so that every success and every error has the same length on the wire: nothing
in clear says whether a request succeeded (only replies carrying a large backup are longer). The
seed's empty content for a success without data stays available as an operator setting.
"""

from __future__ import annotations

from typing import Any

import orjson

from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import Event, sign_event
from dvm.protocol.results import Failure, Reply, Success

PAD_BYTES = 512
"""Plaintexts are padded with trailing spaces (valid JSON whitespace) to at least this length."""


def reply_plaintext(reply: Reply, *, empty_success: bool = False, pad_bytes: int = PAD_BYTES) -> str:
    """The JSON text of a reply, padded; ``""`` for a success without data if ``empty_success``."""
    if isinstance(reply, Success):
        if reply.data is None and empty_success:
            return ""
        text = orjson.dumps({"result": reply.data or {}}).decode()
    else:
        error: dict[str, Any] = {"code": reply.code, "message": reply.message, **dict(reply.details)}
        text = orjson.dumps({"error": error}).decode()
    return text + " " * (pad_bytes - len(text.encode()))


def build_reply(
    encryptor: Encryptor,
    request: Event,
    scheme: Scheme,
    reply: Reply | Failure,
    reply_kind: int,
    now: int,
    ttl_s: int,
    *,
    empty_success: bool = False,
) -> Event:
    """Encrypt (if there is content) and sign the reply to ``request``."""
    plaintext = reply_plaintext(reply, empty_success=empty_success)
    tags: list[list[str]] = [["e", request.id], ["p", request.pubkey], ["expiration", str(now + ttl_s)]]
    content = ""
    if plaintext:
        content = encryptor.encrypt(bytes.fromhex(request.pubkey), plaintext, scheme)
        tags.append(["encrypted"])
    return sign_event(encryptor.key, reply_kind, content, now, tags)

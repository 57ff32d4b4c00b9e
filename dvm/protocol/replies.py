"""Reply events: NIP-90 shaped results, encrypted to the requester in the request's scheme.

A reply has kind ``request_kind + 1000`` and tags ``["e", request_id]``, ``["p", requester]`` and
a NIP-40 ``["expiration", ...]``. An empty success has empty content; data and errors are JSON,
encrypted, with an ``["encrypted"]`` tag: ``{"result": {...}}`` or ``{"error": {"code": ...,
"message": ..., <details>}}``. Nothing in clear says whether a request succeeded.
"""

from __future__ import annotations

from typing import Any

import orjson

from dvm.accounts.decision import Failure, Reply, Success
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import Event, sign_event


def reply_plaintext(reply: Reply) -> str:
    """The JSON text of a reply, or ``""`` for a success without data."""
    if isinstance(reply, Success):
        return "" if reply.data is None else orjson.dumps({"result": reply.data}).decode()
    error: dict[str, Any] = {"code": reply.code, "message": reply.message, **dict(reply.details)}
    return orjson.dumps({"error": error}).decode()


def build_reply(
    encryptor: Encryptor,
    request: Event,
    scheme: Scheme,
    reply: Reply | Failure,
    reply_kind: int,
    now: int,
    ttl_s: int,
) -> Event:
    """Encrypt (if there is content) and sign the reply to ``request``."""
    plaintext = reply_plaintext(reply)
    tags: list[list[str]] = [["e", request.id], ["p", request.pubkey], ["expiration", str(now + ttl_s)]]
    content = ""
    if plaintext:
        content = encryptor.encrypt(bytes.fromhex(request.pubkey), plaintext, scheme)
        tags.append(["encrypted"])
    return sign_event(encryptor.key, reply_kind, content, now, tags)

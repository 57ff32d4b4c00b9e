"""The client side of the protocol, for the demo, the docs' examples and tests.

Builds a signed, PoW-mined, encrypted request exactly as a SIGit browser should, and opens the
DVM's reply. Pure: the caller passes ``created_at`` and the keys (and an ``rng`` via the keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dvm.errors import InvalidEvent
from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import Event, sign_event, verify_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import DEFAULT_REQUEST_KIND
from dvm.protocol.seal import CLIENT_TAG, SEAL_KIND


def request_plaintext(method: str, params: dict[str, Any]) -> str:
    return orjson.dumps({"method": method, "params": params}).decode()


def sealed_plaintext(
    account: SecretKey,
    dvm_pubkey: str,
    client_pubkey: str,
    method: str,
    params: dict[str, Any],
    created_at: int,
) -> str:
    """``{"seal": ...}``: the request signed by the account key, for ``client_pubkey`` to carry."""
    tags = [("p", dvm_pubkey), (CLIENT_TAG, client_pubkey)]
    seal = sign_event(account, SEAL_KIND, request_plaintext(method, params), created_at, tags)
    return orjson.dumps({"seal": seal.to_dict()}).decode()


def build_request(
    client: Encryptor,
    dvm_pubkey: str,
    method: str,
    params: dict[str, Any],
    created_at: int,
    *,
    pow_bits: int,
    kind: int = DEFAULT_REQUEST_KIND,
    scheme: Scheme = Scheme.NIP44,
    expiration_s: int | None = 3600,
    seal: SecretKey | None = None,
) -> Event:
    """A request event from ``client``'s key to the DVM, mined to ``pow_bits``; with ``seal``
    (an account key) the request is sealed by that key, so ``client`` may be an ephemeral key."""
    plaintext = request_plaintext(method, params)
    if seal is not None:
        plaintext = sealed_plaintext(seal, dvm_pubkey, client.key.pubkey_hex, method, params, created_at)
    content = client.encrypt(bytes.fromhex(dvm_pubkey), plaintext, scheme)
    tags: list[tuple[str, ...]] = [("p", dvm_pubkey), ("encrypted",)]
    if expiration_s is not None:
        tags.append(("expiration", str(created_at + expiration_s)))
    pubkey = client.key.pubkey_hex
    if pow_bits > 0:
        tags = list(nip13.mine(pubkey, created_at, kind, tags, content, target=pow_bits))
    return sign_event(client.key, kind, content, created_at, tags)


@dataclass(frozen=True, slots=True)
class OpenedReply:
    """A decrypted reply: ``result`` for success (None when empty), or ``error``."""

    request_id: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> str:
        return "ok" if self.error is None else str(self.error["code"])


def open_reply(client: Encryptor, reply: Event, dvm_pubkey: str) -> OpenedReply:
    """Verify a reply from the DVM to ``client`` and decrypt its content."""
    verify_event(reply)
    if reply.pubkey != dvm_pubkey:
        raise InvalidEvent("reply is not from the DVM")
    request_ids = reply.tag_values("e")
    if not request_ids:
        raise InvalidEvent("reply names no request")
    if not reply.content:
        return OpenedReply(request_ids[0], None, None)
    plaintext, _ = client.decrypt(bytes.fromhex(dvm_pubkey), reply.content)
    body = orjson.loads(plaintext)
    return OpenedReply(request_ids[0], body.get("result"), body.get("error"))

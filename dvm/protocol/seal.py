"""Seals: an account method sent from an ephemeral key, signed by the account key inside.

So that no event on a relay carries the user's own key, a client may send an account method
from a fresh key and put, as the whole decrypted content, ``{"seal": <event>}``: a NIP-01 event
of kind 13 (NIP-59's seal kind) signed by the account key, whose ``content`` is the request JSON
itself and whose tags bind it to this DVM (``["p", <dvm pubkey>]``) and to the carrying event's
key (``["client", <ephemeral pubkey>]``), so nobody else can carry it and it serves no other
service. The seal travels only inside the NIP-44 (or NIP-04) content to the DVM, so it is not
encrypted a second time. Its ``created_at`` must lie in the same window as a request's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from dvm.errors import BadRequest, NostrError, StaleEvent
from dvm.nostr.event import parse_event, verify_event

SEAL_KIND = 13
CLIENT_TAG = "client"


@dataclass(frozen=True, slots=True)
class Opened:
    """A request's content with its seal taken off: the request JSON, and for a sealed one the
    key that signed the seal (``signer``) and the seal's id (a seal is used once)."""

    content: str
    signer: str | None = None
    seal_id: str | None = None


def open_seal(plaintext: str, carrier_pubkey: str, dvm_pubkey: str, now: int, window_s: int) -> Opened:
    """The request inside a sealed request, or the plaintext itself when it is not sealed.

    Raises ``BadRequest`` for a seal that is malformed, unsigned, of another kind or bound to
    another DVM or carrier, and ``StaleEvent`` for one signed outside the window.
    """
    if '"seal"' not in plaintext:  # the fast path; an escaped key is refused by decode_request
        return Opened(plaintext)
    try:
        body = json.loads(plaintext, object_pairs_hook=_unique)
        orjson.dumps(body)  # refuses lone surrogates
    except (ValueError, RecursionError, orjson.JSONEncodeError) as exc:
        raise BadRequest(f"request content is not JSON: {exc}") from exc
    if not isinstance(body, dict) or "seal" not in body:
        return Opened(plaintext)
    if body.keys() != {"seal"}:
        raise BadRequest("a sealed request holds only the seal")
    try:
        seal = parse_event(body["seal"])
        verify_event(seal)
    except NostrError as exc:
        raise BadRequest(f"seal: {exc}") from exc
    if seal.kind != SEAL_KIND:
        raise BadRequest(f"seal: kind must be {SEAL_KIND}")
    if dvm_pubkey not in seal.tag_values("p"):
        raise BadRequest("seal: not addressed to this DVM")
    if seal.tag_values(CLIENT_TAG) != [carrier_pubkey]:
        raise BadRequest("seal: bound to another client key")
    if abs(seal.created_at - now) > window_s:
        raise StaleEvent("The seal's created_at is too far from the DVM's clock.")
    return Opened(seal.content, seal.pubkey, seal.id)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return obj

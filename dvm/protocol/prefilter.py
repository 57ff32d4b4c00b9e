"""What a relay connection may drop unseen: events the intake would drop in silence anyway.

Checked on the event as the relay sent it, before parsing, hashing or any signature check, so
junk costs a few microseconds instead of a signature check and a place in the queue (cost before
work), in the catch-up's pages as on the live subscription. Each check is one the intake makes
before it would answer (:func:`dvm.protocol.intake.open_request`), so dropping on it changes no
outcome: the request kind, our ``p`` tag, a first ``nonce`` tag committing to at least the lowest
PoW minimum, and the CLAIMED id's leading zero bits reaching that commitment (an id that is not
the real one fails verification later; the real check runs there, after the signature).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dvm.nostr.encoding import is_digits, is_lower_hex
from dvm.nostr.nip13 import MAX_TARGET


def plausible_request(
    event: Mapping[str, Any], dvm_pubkey: str, request_kind: int, min_pow_bits: int
) -> bool:
    """False when ``event`` (a relay's decoded JSON) cannot be a request the intake answers."""
    kind, tags, event_id = event.get("kind"), event.get("tags"), event.get("id")
    if type(kind) is not int or kind != request_kind or not isinstance(tags, list):
        return False
    addressed = False
    target: int | None = None
    nonce_seen = min_pow_bits <= 0
    for tag in tags:
        if not isinstance(tag, list) or not tag:
            continue
        name = tag[0]
        if name == "p" and len(tag) > 1 and tag[1] == dvm_pubkey:
            addressed = True
        elif name == "nonce" and not nonce_seen:  # the first nonce tag is the one that counts
            nonce_seen = True
            target = _target(tag)
    if not addressed:
        return False
    if min_pow_bits <= 0:
        return True
    if (
        target is None
        or target < min_pow_bits
        or not isinstance(event_id, str)
        or not is_lower_hex(event_id, 32)
    ):
        return False
    return 256 - int(event_id, 16).bit_length() >= target


def _target(tag: list[Any]) -> int | None:
    """The committed target of a ``nonce`` tag, as :func:`dvm.nostr.nip13.committed_target` reads it."""
    if len(tag) < 3 or not isinstance(tag[2], str):
        return None
    text = tag[2]
    if not is_digits(text) or len(text) > 3 or int(text) > MAX_TARGET:
        return None
    return int(text)

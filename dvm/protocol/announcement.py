"""How clients find this DVM: the NIP-89 handler announcement (kind 31990), the kind 0 profile
with its NIP-05 name, and the ``/.well-known/nostr.json`` body that name resolves through.

Clients read the DVM's pubkey from the event, the request kind from its ``k`` tag, and the rest
(PoW minimums, encryption schemes, protocol version) from its JSON content. docs/protocol.md
("Discovery") shows each, and a test checks its examples against these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from dvm.nostr.event import Event, sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import IntakeRules

ANNOUNCEMENT_KIND = 31990
IDENTIFIER = "sigit-dvm"
PROTOCOLS = ("sigit-dvm/3",)
"""Every version served (``protocols``): version 3 asks ``register`` and ``activate`` to be signed
by the key they name, and shares a mailbox's codes (docs/protocol.md, "Changelog")."""
LEGACY_PROTOCOLS = ("sigit-dvm/1", "sigit-dvm/2", "sigit-dvm/3")
"""Served when the operator accepts unproven keys (``service.accept_unproven_keys``): then the
clients of versions 1 and 2, which send them unsealed, work as before."""
PROFILE_KIND = 0
NIP05_NAME = "dvm"


def protocols(rules: IntakeRules) -> tuple[str, ...]:
    """The versions this DVM serves, oldest first; the ``protocol`` member names the oldest (a
    version 1 client compares it)."""
    return LEGACY_PROTOCOLS if rules.accept_unproven_keys else PROTOCOLS


def announcement(key: SecretKey, rules: IntakeRules, name: str, about: str, now: int) -> Event:
    served = protocols(rules)
    content = {
        "name": name,
        "about": about,
        "protocol": served[0],
        "protocols": list(served),
        "request_kind": rules.request_kind,
        "reply_kind": rules.reply_kind,
        "encryption": ["nip44", "nip04"],
        "pow_bits": {str(method): bits for method, bits in rules.pow_bits.items()},
        "created_at_window_s": rules.created_at_window_s,
    }
    tags = [("d", IDENTIFIER), ("k", str(rules.request_kind))]
    return sign_event(key, ANNOUNCEMENT_KIND, orjson.dumps(content).decode(), now, tags)


def nip05_identifier(domain: str) -> str:
    """``dvm@<domain>``: the name SIGit's docs give the DVM's key ("" without a domain)."""
    return f"{NIP05_NAME}@{domain}" if domain else ""


def profile(key: SecretKey, name: str, about: str, nip05_domain: str, now: int) -> Event:
    """The DVM's kind 0 metadata: its name, what it does and (with a domain) its NIP-05 name."""
    content = {"name": name, "about": about}
    if nip05_domain:
        content["nip05"] = nip05_identifier(nip05_domain)
    return sign_event(key, PROFILE_KIND, orjson.dumps(content).decode(), now, [])


def nip05_document(pubkey: str, relays: Sequence[str]) -> dict[str, Any]:
    """The body of ``https://<domain>/.well-known/nostr.json?name=dvm`` (NIP-05): the name's key
    and the relays the DVM listens on."""
    return {"names": {NIP05_NAME: pubkey}, "relays": {pubkey: list(relays)}}

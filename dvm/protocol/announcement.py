"""The NIP-89 handler announcement (kind 31990) that lets clients find this DVM.

Clients read the DVM's pubkey from the event, the request kind from its ``k`` tag, and the rest
(PoW minimums, encryption schemes, protocol version) from its JSON content.
"""

from __future__ import annotations

import orjson

from dvm.nostr.event import Event, sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import IntakeRules

ANNOUNCEMENT_KIND = 31990
IDENTIFIER = "sigit-dvm"
PROTOCOL = "sigit-dvm/1"


def announcement(key: SecretKey, rules: IntakeRules, name: str, about: str, now: int) -> Event:
    content = {
        "name": name,
        "about": about,
        "protocol": PROTOCOL,
        "request_kind": rules.request_kind,
        "reply_kind": rules.reply_kind,
        "encryption": ["nip44", "nip04"],
        "pow_bits": {str(method): bits for method, bits in rules.pow_bits.items()},
        "created_at_window_s": rules.created_at_window_s,
    }
    tags = [("d", IDENTIFIER), ("k", str(rules.request_kind))]
    return sign_event(key, ANNOUNCEMENT_KIND, orjson.dumps(content).decode(), now, tags)

"""The tests' relays: nostr-relay (the demo's launcher: one implementation of 'a local nostr-relay')
and rust-nostr's (tests.support.rust_relay), so nothing depends on one relay's quirks.

``SIGIT_TEST_RELAY`` (``nostr-relay``, the default, or ``rust-nostr``) picks the relay behind the
``relay`` fixture; the end-to-end flows and the catch-up test run on both whatever it says. A test
that needs what only nostr-relay does (events kept across a restart, NIP-42 roles, its SQLite file,
an expired NIP-40 event stored for the daemon to refuse) asks for ``nostr-relay`` by name.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from websockets.asyncio.client import connect

from dvm.demo.relay import STORAGE, LocalRelay, free_port, wait_until
from dvm.relays import messages
from tests.support.rust_relay import RustRelay

__all__ = [
    "RELAYS",
    "LocalRelay",
    "RustRelay",
    "chosen_relay",
    "free_port",
    "make_relay",
    "replies_on_relay",
    "wait_until",
]

RELAYS = ("nostr-relay", "rust-nostr")
"""The relays every end-to-end flow runs on (``pytest.mark.parametrize("relay", RELAYS, indirect=True)``)."""


def make_relay(directory: Path, name: str) -> LocalRelay | RustRelay:
    """A relay, not yet started: ``nostr-relay`` (on its default SQLite storage), one of its storages
    by name (``sqlite``, ``lmdb``), or ``rust-nostr`` (also ``rust``)."""
    if name in ("rust-nostr", "rust"):
        return RustRelay(directory)
    storage = "sqlite" if name == "nostr-relay" else name
    if storage not in STORAGE:
        raise ValueError(f"unknown relay {name!r}: nostr-relay, {', '.join(STORAGE)} or rust-nostr")
    return LocalRelay(directory, storage=storage)


def chosen_relay() -> str:
    """The relay the ``relay`` fixture starts unless a test names one (``SIGIT_TEST_RELAY``)."""
    name = os.environ.get("SIGIT_TEST_RELAY", "") or "nostr-relay"
    if name not in RELAYS:
        raise ValueError(f"SIGIT_TEST_RELAY={name!r}: one of {', '.join(RELAYS)}")
    return name


async def replies_on_relay(
    url: str, request_ids: list[str], reply_kind: int = 6780
) -> dict[str, dict[str, dict]]:
    """Every reply event on the relay, by the request it answers, then by its own id; 100 requests
    per filter, so no relay's cap on a filter's results hides a second reply."""
    found: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    async with connect(url, max_size=2**24) as ws:
        for start in range(0, len(request_ids), 100):
            chunk = request_ids[start : start + 100]
            await ws.send(messages.req("r", {"kinds": [reply_kind], "#e": chunk, "limit": 1000}))
            async for raw in ws:
                msg = messages.parse_relay_message(raw)
                if isinstance(msg, messages.EoseMsg):
                    break
                if isinstance(msg, messages.EventMsg):
                    for tag in msg.event["tags"]:
                        if tag[:1] == ["e"] and tag[1] in chunk:
                            found[tag[1]][msg.event["id"]] = msg.event
    return found

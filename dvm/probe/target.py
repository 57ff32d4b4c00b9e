"""Which DVM the probe checks, and what it announces: as a client finds it (docs/protocol.md,
"Discovery").

The DVM is named by an npub, a hex key or a NIP-05 name (``dvm@sigit.example``: its
``/.well-known/nostr.json`` gives the key and the relays); without a name, the daemon's own key
(when the probe may read it) or ``dvm@<daemon.nip05_domain>``. The announcement (kind 31990)
read from its relays gives the request kind, the PoW minimums and the protocol versions.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

from dvm.errors import ConfigError, NostrError
from dvm.mailer.backends import is_loopback
from dvm.nostr import bech32
from dvm.nostr.encoding import is_lower_hex
from dvm.nostr.event import Event
from dvm.protocol.announcement import IDENTIFIER, PROTOCOLS

MAX_DOCUMENT_BYTES = 64 * 1024
PROTOCOL = PROTOCOLS[-1]  # the version this probe speaks


@dataclass(frozen=True, slots=True)
class Named:
    """A DVM as the operator named it: a key, or a NIP-05 name still to resolve."""

    pubkey: str = ""
    nip05: str = ""


def parse_name(value: str) -> Named:
    """``npub1...``, 64 hex characters, or ``name@domain``; ConfigError otherwise."""
    text = value.strip()
    if text.startswith("npub1"):
        try:
            return Named(pubkey=bech32.decode_npub(text).hex())
        except (NostrError, ValueError) as exc:
            raise ConfigError(f"--dvm: {text!r} is not a valid npub") from exc
    if is_lower_hex(text.lower(), 32):
        return Named(pubkey=text.lower())
    name, at, domain = text.rpartition("@")
    if at and name and domain and "/" not in domain:
        return Named(nip05=text)
    raise ConfigError(f"--dvm: {text!r} is neither an npub, a hex key nor a NIP-05 name (dvm@domain)")


def nip05_url(name: str) -> str:
    """Where a NIP-05 name resolves: https, except for a loopback host (a local stack)."""
    local, _, domain = name.rpartition("@")
    host = urllib.parse.urlsplit(f"//{domain}").hostname or ""
    scheme = "http" if is_loopback(host) else "https"
    return f"{scheme}://{domain}/.well-known/nostr.json?name={urllib.parse.quote(local)}"


def read_nip05(name: str, document: Any) -> tuple[str, tuple[str, ...]]:
    """The key and relays a ``nostr.json`` body gives for ``name``."""
    local = name.rpartition("@")[0]
    names = document.get("names") if isinstance(document, dict) else None
    pubkey = names.get(local) if isinstance(names, dict) else None
    if not isinstance(pubkey, str) or not is_lower_hex(pubkey, 32):
        raise ValueError(f"the document names no key for {local!r}")
    relays = document.get("relays", {}).get(pubkey, []) if isinstance(document.get("relays"), dict) else []
    urls = tuple(u for u in relays if isinstance(u, str) and u.startswith(("ws://", "wss://")))
    return pubkey, urls


async def resolve_nip05(name: str, timeout_s: float) -> tuple[str, tuple[str, ...]]:
    """Fetch the NIP-05 document for ``name``; ValueError or OSError with what went wrong."""
    url = nip05_url(name)

    def fetch() -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (http(s))
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return bytes(response.read(MAX_DOCUMENT_BYTES + 1))

    body = await asyncio.to_thread(fetch)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url}: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{url}: not JSON") from exc
    return read_nip05(name, document)


@dataclass(frozen=True, slots=True)
class Announced:
    """What the DVM's NIP-89 announcement says (docs/protocol.md, "Discovery")."""

    request_kind: int
    reply_kind: int
    pow_bits: dict[str, int]
    protocols: tuple[str, ...]
    created_at_window_s: int
    created_at: int

    @classmethod
    def defaults(cls) -> Announced:
        """The protocol document's defaults, for a DVM whose announcement was not found."""
        bits = {"request_account": 16, "register": 16, "request_login": 16}
        return cls(5780, 6780, bits, (PROTOCOL,), 600, 0)

    def bits(self, method: str) -> int:
        return self.pow_bits.get(method, 12)


def read_announcement(event: Event) -> Announced:
    """An announcement's content; ValueError when it is not one this probe can use."""
    if event.kind != 31990 or (event.first_tag("d") or ("", ""))[1:2] != (IDENTIFIER,):
        raise ValueError("not a sigit-dvm announcement")
    try:
        content = orjson.loads(event.content)
    except orjson.JSONDecodeError as exc:
        raise ValueError("its content is not JSON") from exc
    if not isinstance(content, dict):
        raise ValueError("its content is not an object")
    served = content.get("protocols") or [content.get("protocol")]
    pow_bits = content.get("pow_bits")
    kind = content.get("request_kind")
    if not isinstance(kind, int) or not isinstance(pow_bits, dict):
        raise ValueError("it has no request_kind or pow_bits")
    return Announced(
        request_kind=kind,
        reply_kind=int(content.get("reply_kind", kind + 1000)),
        pow_bits={str(k): int(v) for k, v in pow_bits.items() if isinstance(v, int)},
        protocols=tuple(str(p) for p in served if isinstance(p, str)),
        created_at_window_s=int(content.get("created_at_window_s", 600)),
        created_at=event.created_at,
    )

"""NIP-01 relay messages, decoded strictly: a malformed message is dropped, never trusted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class EventMsg:
    subscription: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OkMsg:
    event_id: str
    accepted: bool
    message: str

    @property
    def prefix(self) -> str:
        """The machine-readable prefix of the message (``pow``, ``rate-limited``...), or ``""``."""
        head, sep, _ = self.message.partition(":")
        return head.strip() if sep else ""


@dataclass(frozen=True, slots=True)
class EoseMsg:
    subscription: str


@dataclass(frozen=True, slots=True)
class ClosedMsg:
    subscription: str
    message: str


@dataclass(frozen=True, slots=True)
class NoticeMsg:
    message: str


@dataclass(frozen=True, slots=True)
class AuthMsg:
    challenge: str


RelayMessage = EventMsg | OkMsg | EoseMsg | ClosedMsg | NoticeMsg | AuthMsg


def parse_relay_message(raw: str | bytes) -> RelayMessage | None:
    """Decode one relay message; None for anything malformed or unknown."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        return None
    kind, args = msg[0], msg[1:]
    if kind == "EVENT" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], dict):
        return EventMsg(args[0], args[1])
    if kind == "OK" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], bool):
        text = args[2] if len(args) > 2 and isinstance(args[2], str) else ""
        return OkMsg(args[0], args[1], text)
    if kind == "EOSE" and len(args) == 1 and isinstance(args[0], str):
        return EoseMsg(args[0])
    if kind == "CLOSED" and len(args) >= 1 and isinstance(args[0], str):
        return ClosedMsg(args[0], args[1] if len(args) > 1 and isinstance(args[1], str) else "")
    if kind == "NOTICE" and len(args) >= 1 and isinstance(args[0], str):
        return NoticeMsg(args[0])
    if kind == "AUTH" and len(args) >= 1 and isinstance(args[0], str):
        return AuthMsg(args[0])
    return None


def req(subscription: str, *filters: dict[str, Any]) -> str:
    return orjson.dumps(["REQ", subscription, *filters]).decode()


def close(subscription: str) -> str:
    return orjson.dumps(["CLOSE", subscription]).decode()


def event(event_dict: dict[str, Any]) -> str:
    return orjson.dumps(["EVENT", event_dict]).decode()


def event_raw(event_json: str) -> str:
    """``["EVENT", <event>]`` around JSON that is already serialized (no re-encoding)."""
    return f'["EVENT",{event_json}]'


def auth(event_dict: dict[str, Any]) -> str:
    return orjson.dumps(["AUTH", event_dict]).decode()


def shown(text: str, limit: int = 200) -> str:
    """Relay text as it may be logged: cut to ``limit`` and every non-printable character escaped,
    so a relay cannot forge a log line with a newline or hide text behind control characters."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)

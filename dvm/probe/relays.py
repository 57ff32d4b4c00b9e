"""The probe's side of the relays: a connection per relay, as a browser would hold one.

It publishes an event and waits for the relay's ``OK``, and keeps subscriptions that hand every
verified event they match to a queue. A relay's NIP-42 challenge is answered with the probe's
own (ephemeral) key. Nothing here retries or reconnects: a probe reports what it saw once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from dvm.errors import NostrError
from dvm.nostr.event import Event, parse_event, sign_event, verify_event
from dvm.nostr.keys import SecretKey
from dvm.relays import messages

AUTH_KIND = 22242
MAX_MESSAGE_BYTES = 2**22


@dataclass(frozen=True, slots=True)
class Published:
    """What one relay said to one event: accepted or not, its message, and how long it took."""

    relay: str
    accepted: bool
    message: str
    ms: float


class ProbeRelay:
    """One relay: publish with OK, subscriptions into a shared queue of (relay, event)."""

    def __init__(self, url: str, key: SecretKey, inbox: asyncio.Queue[tuple[str, Event]]) -> None:
        self.url = url
        self.key = key
        self.inbox = inbox
        self.error = ""  # why the connection failed or ended, for the report
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._oks: dict[str, asyncio.Future[messages.OkMsg]] = {}
        self._eose: dict[str, asyncio.Event] = {}
        self._filters: dict[str, tuple[dict[str, Any], ...]] = {}
        self._refused: set[str] = set()  # subscriptions closed with auth-required, asked again after AUTH
        self._asked_again: set[str] = set()
        self._authenticated = False
        self._challenge = ""  # a NIP-42 challenge to answer (from the reader, between messages)

    async def open(self, timeout_s: float) -> bool:
        try:
            self._ws = await asyncio.wait_for(
                connect(self.url, max_size=MAX_MESSAGE_BYTES, open_timeout=None), timeout_s
            )
        except (OSError, TimeoutError, ValueError) as exc:
            self.error = f"cannot connect: {exc or type(exc).__name__}"
            return False
        except Exception as exc:  # websockets' handshake errors (InvalidStatus, InvalidURI...)
            self.error = f"cannot connect: {type(exc).__name__}: {exc}"
            return False
        self._reader = asyncio.create_task(self._read())
        return True

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self.error

    async def subscribe(self, name: str, *filters: dict[str, Any]) -> None:
        if self._ws is None:
            return
        self._eose[name] = asyncio.Event()
        self._filters[name] = filters
        await self._ws.send(messages.req(name, *filters))

    async def stored(self, name: str, timeout_s: float) -> None:
        """Wait until the relay sent what it stores for ``name`` (EOSE), was closed, or timed out."""
        done = self._eose.get(name)
        if done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout_s)

    async def publish(self, event: Event, timeout_s: float) -> Published:
        """Send ``event`` and wait for the relay's OK (once more after an ``auth-required``)."""
        started = time.monotonic()
        message = ""
        for _ in range(2):
            ok = await self._send_event(event, timeout_s)
            ms = (time.monotonic() - started) * 1000
            if ok is None:
                return Published(self.url, False, self.error or "no OK from the relay", ms)
            if ok.accepted or ok.prefix != "auth-required":
                return Published(self.url, ok.accepted, ok.message, ms)
            message = ok.message
            await asyncio.sleep(0.2)  # the relay's AUTH challenge came, or comes; answered in _read
        return Published(self.url, False, message, (time.monotonic() - started) * 1000)

    async def _send_event(self, event: Event, timeout_s: float) -> messages.OkMsg | None:
        if self._ws is None:
            return None
        future: asyncio.Future[messages.OkMsg] = asyncio.get_running_loop().create_future()
        self._oks[event.id] = future
        try:
            await self._ws.send(messages.event_raw(event.to_json()))
            return await asyncio.wait_for(future, timeout_s)
        except (TimeoutError, OSError):
            return None
        except Exception as exc:  # the connection closed under us
            self.error = self.error or f"connection lost: {type(exc).__name__}"
            return None
        finally:
            self._oks.pop(event.id, None)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._handle(messages.parse_relay_message(raw))
                if self._challenge:
                    challenge, self._challenge = self._challenge, ""
                    await self._authenticate(challenge)
                if self._refused and self._authenticated:  # asked again, behind the AUTH
                    for name in sorted(self._refused):
                        await self._ws.send(messages.req(name, *self._filters[name]))
                    self._refused.clear()
            self.error = self.error or "connection closed by the relay"
        except Exception as exc:  # closed by the relay, or a network error: the report says so
            self.error = self.error or f"connection lost: {type(exc).__name__}"
        finally:
            for future in self._oks.values():
                if not future.done():
                    future.cancel()
            for done in self._eose.values():
                done.set()

    def _handle(self, msg: messages.RelayMessage | None) -> None:
        if isinstance(msg, messages.EventMsg):
            try:
                event = parse_event(msg.event)
                verify_event(event)
            except NostrError:
                return  # a relay passing on a forged event: not the DVM's
            self.inbox.put_nowait((self.url, event))
        elif isinstance(msg, messages.OkMsg):
            future = self._oks.get(msg.event_id)
            if future is not None and not future.done():
                future.set_result(msg)
        elif isinstance(msg, messages.EoseMsg | messages.ClosedMsg):
            if (
                isinstance(msg, messages.ClosedMsg)
                and msg.message.startswith("auth-required:")
                and msg.subscription in self._filters
                and msg.subscription not in self._asked_again
            ):
                self._asked_again.add(msg.subscription)  # once: a relay that refuses again is said so
                self._refused.add(msg.subscription)
                return
            done = self._eose.get(msg.subscription)
            if done is not None:
                done.set()
        elif isinstance(msg, messages.AuthMsg):
            self._challenge = msg.challenge

    async def _authenticate(self, challenge: str) -> None:
        if self._ws is None:
            return
        tags = [("relay", self.url), ("challenge", challenge[:256])]
        auth = sign_event(self.key, AUTH_KIND, "", int(time.time()), tags)
        await self._ws.send(messages.auth(auth.to_dict()))
        self._authenticated = True  # relays handle messages in order: what follows is authenticated

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)


class ProbeRelays:
    """Every relay of the DVM at once: events from any of them arrive on one queue."""

    def __init__(self, urls: Sequence[str], key: SecretKey) -> None:
        self.inbox: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        self.relays = [ProbeRelay(url, key, self.inbox) for url in urls]

    async def open(self, timeout_s: float) -> None:
        await asyncio.gather(*(r.open(timeout_s) for r in self.relays))

    @property
    def connected(self) -> list[ProbeRelay]:
        return [r for r in self.relays if r.connected]

    async def subscribe(self, name: str, *filters: dict[str, Any]) -> None:
        await asyncio.gather(*(r.subscribe(name, *filters) for r in self.connected))

    async def stored(self, name: str, timeout_s: float) -> None:
        await asyncio.gather(*(r.stored(name, timeout_s) for r in self.connected))

    async def publish(self, event: Event, timeout_s: float) -> list[Published]:
        return list(await asyncio.gather(*(r.publish(event, timeout_s) for r in self.connected)))

    async def next_event(self, match: Callable[[Event], bool], timeout_s: float) -> tuple[str, Event] | None:
        """The first event from any relay that ``match`` accepts, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                relay, event = await asyncio.wait_for(self.inbox.get(), left)
            except TimeoutError:
                return None
            if match(event):
                return relay, event
        return None

    def drain(self) -> list[tuple[str, Event]]:
        """Every event queued so far."""
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    async def close(self) -> None:
        await asyncio.gather(*(r.close() for r in self.relays))

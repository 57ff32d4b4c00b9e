"""One relay: a websocket kept open with backoff, our subscription, NIP-42 AUTH and publishing.

The connection reads relay messages in order and hands events to ``on_event``, awaiting it: when
the daemon's intake queue is full, reading stops and TCP back-pressure reaches the relay, so a
flood cannot grow memory without bound. Events ``accept`` refuses (junk: see
:mod:`dvm.protocol.prefilter`) are dropped before that.

Each connection's subscription is followed by a catch-up: once the live subscription's stored
events end (EOSE), a second subscription pages back through what the relay capped
(:mod:`dvm.relays.catchup`), page after page, while the live one keeps running. It stops at an
empty page, at the resume point, or after ``catchup_max_s``. The subscription sent again behind
NIP-42 AUTH joins the catch-up under way rather than restarting it.

Publishing waits for the relay's ``OK`` (with a timeout) and handles its prefixes: ``duplicate:``
counts as accepted, ``auth-required:`` is retried once after authenticating; anything else is
reported to the caller, who keeps the reply queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from dvm.backoff import Backoff
from dvm.nostr.event import Event, sign_event
from dvm.nostr.keys import SecretKey
from dvm.outage import Outage
from dvm.relays import messages
from dvm.relays.catchup import Catchup, CatchupStats

log = logging.getLogger("sigit.relays")

AUTH_KIND = 22242
SUBSCRIPTION = "sigit-dvm"
PAGES = "sigit-dvm-pages"  # the catch-up's subscription, beside the live one
MAX_MESSAGE_BYTES = 512 * 1024

OnEvent = Callable[[dict[str, Any], str], Awaitable[None]]
OnConnect = Callable[["RelayConnection"], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class PublishResult:
    relay: str
    accepted: bool
    message: str


class RelayConnection:
    def __init__(
        self,
        url: str,
        *,
        on_event: OnEvent,
        make_filter: Callable[[], dict[str, Any]],
        key: SecretKey,
        backoff: Backoff,
        publish_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        on_connect: OnConnect | None = None,
        accept: Callable[[dict[str, Any]], bool] | None = None,
        catchup_page_limit: int = 500,
        catchup_max_s: float = 300.0,
    ) -> None:
        self.url = url
        self._on_event = on_event
        self._on_connect = on_connect
        self._hooks: set[asyncio.Task[None]] = set()
        self._make_filter = make_filter
        self._key = key
        self._backoff = backoff
        self._publish_timeout_s = publish_timeout_s
        self._clock = clock
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[messages.OkMsg]] = {}
        self._auth_event_id: str | None = None
        self._auth_sent_at = -1e9  # monotonic; an AUTH without an OK yet counts as pending a while
        self._challenges = ("", "")  # the relay's latest challenge, and the one answered last
        self._authenticated = asyncio.Event()
        self._resubscribe_on_auth = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._accept = accept
        self._page_limit = catchup_page_limit
        self._catchup_max_s = catchup_max_s
        self._catchup: Catchup | None = None
        self._catchup_deadline = 0.0
        self._catchup_started = 0.0
        self._first_page = False  # the live subscription's stored events are coming
        self._paging = False  # a page of the catch-up is being read
        self.connected = asyncio.Event()
        self.outage = Outage(log, f"relay {url}")  # down: one WARNING, reminders, back: one INFO
        # Set at our subscription's EOSE: events published from then on come live. A relay may miss
        # an event published while it was still answering the REQ (nostr-relay's LMDB store does).
        self.caught_up = asyncio.Event()
        # Set when the catch-up behind the latest subscription has ended (complete, or cut short:
        # the log says which).
        self.paged_back = asyncio.Event()
        self.last_catchup: CatchupStats | None = None  # what the latest ended catch-up did

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay {self.url}")

    async def close(self) -> None:
        self._closing = True
        for hook in list(self._hooks):
            hook.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delays = self._backoff.delays()
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    max_size=MAX_MESSAGE_BYTES,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    # No permessage-deflate: requests and replies are mostly NIP-44 ciphertext, which
                    # does not compress; deflating it was a third of the daemon's CPU for sending a
                    # reply (py-spy), and it cost the relay too (docs/performance.md, section 3).
                    compression=None,
                ) as ws:
                    self._ws = ws
                    delays = self._backoff.delays()
                    await self._subscribe(ws)
                    self.connected.set()
                    if self.outage.down:
                        self.outage.ok()  # "relay ... back after N s"
                    else:
                        log.info("relay connected %s", self.url)
                    if self._on_connect is not None:  # a task: it may publish, which needs this reader
                        hook = asyncio.create_task(self._on_connect(self))
                        self._hooks.add(hook)
                        hook.add_done_callback(self._hooks.discard)
                    async for raw in ws:
                        await self._dispatch(raw)
                    if not self._closing:  # our own close at shutdown is no warning
                        self.outage.failed("it closed the connection")
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                self.outage.failed(f"unreachable ({type(exc).__name__})")
            finally:
                self._lost()
            if not self._closing:
                await asyncio.sleep(next(delays))

    def _lost(self) -> None:
        self._ws = None
        self.connected.clear()
        self.caught_up.clear()
        self.paged_back.clear()
        self._catchup = None
        self._first_page = self._paging = False
        self._authenticated.clear()
        self._auth_event_id = None
        self._auth_sent_at = -1e9
        self._challenges = ("", "")
        for future in self._pending.values():
            if not future.done():
                future.set_result(messages.OkMsg("", False, "error: connection lost"))
        self._pending.clear()

    async def _subscribe(self, ws: ClientConnection) -> None:
        """Send the live subscription (replacing any earlier one) and start its catch-up, unless
        one is under way: a subscription sent again behind AUTH while the first one's stored
        events still come (the relay answers both, in order) must not restart or end its pages."""
        live = self._make_filter()
        if self._catchup is None or self._catchup.finished:
            self._catchup = Catchup(live, self._page_limit)
            self._catchup_started = time.monotonic()
            self._catchup_deadline = self._catchup_started + self._catchup_max_s
            self._first_page = True
            self.paged_back.clear()
        await ws.send(messages.req(SUBSCRIPTION, live))

    async def _deliver(self, event: dict[str, Any]) -> None:
        if self._accept is None or self._accept(event):
            await self._on_event(event, self.url)

    async def _dispatch(self, raw: str | bytes) -> None:
        msg = messages.parse_relay_message(raw)
        if isinstance(msg, messages.EventMsg):
            catchup = self._catchup
            if msg.subscription == SUBSCRIPTION:
                if self._first_page and catchup is not None:
                    catchup.take(msg.event)  # its oldest second is where the next page starts
                await self._deliver(msg.event)
            elif (
                msg.subscription == PAGES and self._paging and catchup is not None and catchup.take(msg.event)
            ):
                await self._deliver(msg.event)
        elif isinstance(msg, messages.EoseMsg) and msg.subscription == PAGES and self._paging:
            await self._next_page()
        elif isinstance(msg, messages.OkMsg):
            await self._ok(msg)
        elif isinstance(msg, messages.AuthMsg):
            await self._authenticate(msg.challenge)
        elif isinstance(msg, messages.ClosedMsg) and msg.subscription == SUBSCRIPTION:
            await self._subscription_closed(msg.message)
        elif isinstance(msg, messages.ClosedMsg) and msg.subscription == PAGES and self._paging:
            self._paging = False
            self._end_catchup(f"the relay closed it: {messages.shown(msg.message)}")
        elif isinstance(msg, messages.NoticeMsg):
            log.info("relay notice %s: %s", self.url, messages.shown(msg.message))
        elif isinstance(msg, messages.EoseMsg) and msg.subscription == SUBSCRIPTION:
            log.debug("relay %s: end of stored events", self.url)
            self.caught_up.set()
            if self._first_page:  # not when a second REQ's end comes while the pages run
                self._first_page = False
                await self._next_page()

    async def _next_page(self) -> None:
        """A page of stored events has ended: ask for the one before it, or end the catch-up."""
        catchup, ws = self._catchup, self._ws
        if catchup is None or ws is None or catchup.finished:
            return
        page = catchup.end_of_page(more=time.monotonic() <= self._catchup_deadline)
        if page is not None:
            self._paging = True
            await ws.send(messages.req(PAGES, page))  # replaces the page before, if any
            return
        if self._paging:
            self._paging = False
            await ws.send(messages.close(PAGES))
        self._end_catchup(
            ""
            if catchup.complete
            else f"it took longer than {self._catchup_max_s:g} s (relays.catchup_max_s)"
        )

    def _end_catchup(self, cut_short: str) -> None:
        catchup = self._catchup
        if catchup is None or self.paged_back.is_set():
            return
        catchup.stop()
        stats = self.last_catchup = catchup.stats
        took_s = time.monotonic() - self._catchup_started
        if cut_short:
            log.warning(
                "relay %s: catch-up stopped after %d page(s), %.1f s: %s; requests older than "
                "created_at %s were not fetched from it",
                self.url,
                stats.pages,
                took_s,
                cut_short,
                stats.oldest,
            )
        elif stats.pages:
            log.info(
                "relay %s: caught up %d stored event(s) in %d more page(s), %.1f s",
                self.url,
                stats.handed_on,
                stats.pages,
                took_s,
            )
        self.paged_back.set()

    async def _ok(self, msg: messages.OkMsg) -> None:
        if msg.event_id == self._auth_event_id:
            if msg.accepted:
                self._authenticated.set()
                if self._resubscribe_on_auth and self._ws is not None:
                    self._resubscribe_on_auth = False
                    await self._subscribe(self._ws)
            else:
                log.warning("relay %s refused our AUTH: %s", self.url, messages.shown(msg.message))
                self._auth_sent_at = -1e9
                latest, answered = self._challenges
                if latest != answered:  # a newer challenge came meanwhile: answer that one now
                    await self._authenticate(latest)
            return
        future = self._pending.pop(msg.event_id, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _authenticate(self, challenge: str) -> None:
        """NIP-42: answer the challenge with a signed kind-22242 event, unless authenticated or an
        answer is on its way: a relay may send a new challenge with every event it refuses
        (rust-nostr's does), and answering each one gets AUTH itself refused as too many attempts."""
        self._challenges = (challenge, self._challenges[1])
        pending = time.monotonic() - self._auth_sent_at < self._publish_timeout_s
        if self._ws is None or self._authenticated.is_set() or pending:
            return
        self._auth_sent_at = time.monotonic()
        self._challenges = (challenge, challenge)
        tags = [("relay", self.url), ("challenge", challenge[:256])]
        auth = sign_event(self._key, AUTH_KIND, "", int(self._clock()), tags)
        self._auth_event_id = auth.id
        await self._ws.send(messages.auth(auth.to_dict()))
        # Subscribe again behind the AUTH (same id: it replaces the first one). A REQ sent before
        # the challenge may have been refused, with CLOSED or only a NOTICE, and some relays never
        # answer AUTH with an OK; messages are handled in order, so this REQ is authenticated.
        self._resubscribe_on_auth = False
        await self._subscribe(self._ws)

    async def _subscription_closed(self, reason: str) -> None:
        if reason.startswith("auth-required:"):
            self._resubscribe_on_auth = True  # the relay's AUTH challenge comes (or came); retry then
            if self._authenticated.is_set() and self._ws is not None:
                self._resubscribe_on_auth = False
                await self._subscribe(self._ws)
            return
        log.warning("relay %s closed our subscription: %s; reconnecting", self.url, messages.shown(reason))
        if self._ws is not None:
            await self._ws.close()

    async def publish(self, event: Event) -> PublishResult:
        """Send ``event`` and wait for the relay's OK (or a timeout)."""
        return await self.publish_raw(event.id, event.to_json())

    async def publish_raw(self, event_id: str, event_json: str) -> PublishResult:
        """Send an already serialized event (as stored in the outbox) and wait for its OK."""
        result = await self._publish_once(event_id, event_json)
        if not result.accepted and result.message.startswith("auth-required:"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._authenticated.wait(), self._publish_timeout_s)
                result = await self._publish_once(event_id, event_json)
        return result

    async def _publish_once(self, event_id: str, event_json: str) -> PublishResult:
        ws = self._ws
        if ws is None:
            return PublishResult(self.url, False, "error: not connected")
        future: asyncio.Future[messages.OkMsg] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = future
        try:
            await ws.send(messages.event_raw(event_json))
            ok = await asyncio.wait_for(future, self._publish_timeout_s)
        except TimeoutError:
            return PublishResult(self.url, False, "error: no OK before the timeout")
        except websockets.exceptions.WebSocketException as exc:
            return PublishResult(self.url, False, f"error: {type(exc).__name__}")
        finally:
            self._pending.pop(event_id, None)
        accepted = ok.accepted or ok.prefix == "duplicate"
        return PublishResult(self.url, accepted, ok.message)

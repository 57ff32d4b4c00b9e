"""The reply publisher, twin of the mail worker: sends what the reply outbox holds, with retries.

A committed reply is published at once to every relay (``submit``). What happened goes to the
write-behind as a :class:`~dvm.outbox.ReplyMark`: published, or due again after a back-off. A
reply no relay accepted stays in the outbox (the ``requests`` table) and the retry loop
(``run``) publishes it again when it is due; so does a reply a crashed run committed but never
saw published. The NIP-89 announcement goes out each time a relay (re)connects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from dvm.backoff import Backoff
from dvm.metrics import Metrics
from dvm.nostr.event import Event
from dvm.outbox import PendingReply, ReplyMark
from dvm.relays.connection import RelayConnection
from dvm.relays.messages import shown
from dvm.relays.pool import RelayPool
from dvm.store import repository
from dvm.store.database import Store, unavailable
from dvm.store.leases import Leader
from dvm.store.writebehind import WriteBehind

log = logging.getLogger("sigit.publisher")

RETRY_BATCH = 100
RETRY_POLL_S = 1.0


class Publisher:
    def __init__(
        self,
        pool: RelayPool,
        db: Store,
        writebehind: WriteBehind,
        backoff: Backoff,
        announcement: Callable[[int], Sequence[Event]],
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        leader: Leader | None = None,
    ) -> None:
        self.pool = pool
        self.leader = leader or Leader(db, "")
        self.db = db
        self.writebehind = writebehind
        self.backoff = backoff
        self._announcement = announcement
        self._clock = clock
        self.metrics = metrics or Metrics()
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """No publication under way."""
        return not self._in_flight

    def submit(self, replies: Sequence[PendingReply]) -> None:
        """Publish freshly committed replies now, without waiting for them."""
        if replies:
            task = asyncio.ensure_future(self.publish(replies))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def send_unstored(self, replies: Sequence[Event]) -> None:
        """Publish replies that have no outbox row (refusals at intake) once, best effort."""
        if replies:
            task = asyncio.ensure_future(self._publish_unstored(replies))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _publish_unstored(self, replies: Sequence[Event]) -> None:
        started = time.monotonic()
        results = await asyncio.gather(*(self.pool.publish(reply) for reply in replies))
        self.metrics.replies_published(  # counted like every other publication
            [[(r.relay, r.accepted, r.message) for r in outcome] for outcome in results],
            time.monotonic() - started,
        )

    async def publish(self, replies: Sequence[PendingReply]) -> None:
        """Publish to every relay; mark each reply published, or due again after a back-off."""
        started = time.monotonic()
        results = await asyncio.gather(*(self.pool.publish(r.reply) for r in replies))
        self.metrics.replies_published(  # per relay; the time is until all answered
            [[(r.relay, r.accepted, r.message) for r in outcome] for outcome in results],
            time.monotonic() - started,
        )
        now = int(self._clock())
        marks: list[ReplyMark] = []
        for reply, outcome in zip(replies, results, strict=True):
            if any(r.accepted for r in outcome):
                marks.append(ReplyMark(reply.event_id, True, now))
                continue
            marks.append(ReplyMark(reply.event_id, False, now + int(self.backoff.delay(reply.attempts))))
            reasons = "; ".join(f"{r.relay}: {r.message}" for r in outcome) or "no relays"
            log.warning("reply to %s not published yet (%s)", reply.event_id[:12], shown(reasons, 300))
        self.writebehind.add(marks)

    async def run(self) -> None:
        """Republish replies that are due (refused earlier, or left by a previous run)."""
        while True:
            try:
                # Of several daemons on one database, the leader alone retries (dvm.store.leases).
                if self.leader.is_leader:
                    due = await self.db.run(
                        partial(repository.due_replies, now=int(self._clock()), limit=RETRY_BATCH)
                    )
                    if due and self.pool.connected:
                        await self.publish(due)
            except Exception as exc:
                if unavailable(exc):  # the store logs the outage, once
                    log.debug("reply retry pass failed (%s)", type(exc).__name__)
                else:
                    log.exception("reply retry pass failed")
            await asyncio.sleep(RETRY_POLL_S)

    async def announce(self, conn: RelayConnection) -> None:
        """Publish the NIP-89 announcement and the kind 0 profile to a relay each time it
        (re)connects; of several daemons on one database, only the leader does."""
        self.metrics.relay_connected(conn.url)
        if not self.leader.is_leader:
            return
        for event in self._announcement(int(self._clock())):
            result = await conn.publish(event)
            if not result.accepted:
                log.warning("kind %d refused by %s: %s", event.kind, conn.url, shown(result.message))

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for publications under way."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)

    async def close(self) -> None:
        """Cancel publications still under way (their replies stay due in the outbox)."""
        tasks: list[asyncio.Task[Any]] = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

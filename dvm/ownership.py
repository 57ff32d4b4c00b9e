"""Which daemon opens and decides each request, of several sharing one PostgreSQL database.

Every daemon sees every request (they subscribe to the same relays). The live members
(``dvm.store.members``) split the event-id space by rendezvous hashing: an event belongs to the
member with the highest hash of (member, event id), so one joining or leaving moves its own share
only. A daemon opens (verifies, decrypts) and decides its own events, and **parks** the others'
unopened: no signature check, no decryption. A parked event comes back to its pipeline only if
its owner does not decide it:

- each beat (every second) the parked events are looked up among the decided requests: one
  decided, by whichever daemon, is dropped, and its later copies with it;
- one that now belongs to this daemon (its owner left: stopped, or its lease lapsed) is taken at
  once;
- one still undecided :attr:`Ownership.takeover_s` after it came is taken, whoever owns it: the
  owner may be alive and never have got it (a relay it is not connected to, a subscription not
  live yet, a view of the members that differs from ours while one joins or leaves).

Taking an event over is safe whenever it happens: a decision locks its request id
(``dvm.store.keylocks``), so a request taken by two daemons is decided once and the later one
answers with the stored reply. Refusals at intake (stale, undecodable, too little PoW) are stored
nowhere, so each daemon that saw one answers it once ``takeover_s`` has passed: the same code,
each signed anew. With one member (or SQLite) every event is this daemon's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from dvm.nostr.event import Event
from dvm.store import members
from dvm.store.database import Store, unavailable

log = logging.getLogger("sigit.ownership")

BEAT_S = 1.0
CHECK_AFTER_S = 0.5
"""A parked event is first looked up this long after it came (its owner decides in milliseconds)."""
SETTLED_CAPACITY = 100_000
"""Ids of decided events remembered to drop their later copies (a bounded LRU)."""


def owner_of(event_id: str, live: Sequence[str]) -> str:
    """The member among ``live`` that owns ``event_id`` (rendezvous hashing)."""
    data = bytes.fromhex(event_id)

    def weight(member: str) -> bytes:
        return hashlib.blake2b(data, digest_size=8, key=member.encode()[:64]).digest()

    return max(live, key=weight)


@dataclass(slots=True)
class _Parked:
    event: Event
    relay: str
    since: float  # monotonic


class Ownership:
    """This daemon's share of the requests: :meth:`mine` filters before opening, :meth:`run`
    beats, settles parked events and hands back those to take over (``handback``)."""

    def __init__(
        self,
        db: Store,
        member: str,
        takeover_s: float,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.member = member
        self.takeover_s = takeover_s
        self.capacity = capacity
        self.members: tuple[str, ...] = (member,)
        self.handback: Callable[[Event, str], Awaitable[None]] | None = None
        self.on_settled: Callable[[str], None] | None = None  # "decided" or "taken_over"
        self._clock = clock
        self._parked: dict[Event, _Parked] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._joined = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def parked(self) -> int:
        return len(self._parked)

    def mine(self, event: Event, relay: str) -> bool:
        """True: open and decide ``event`` now. False: another live member's, parked (or
        decided already)."""
        if len(self.members) < 2 or owner_of(event.id, self.members) == self.member:
            return True
        if event.id in self._settled:
            return False
        if event not in self._parked and len(self._parked) >= self.capacity:
            return True  # full: deciding it here costs work, never a request
        self._parked.setdefault(event, _Parked(event, relay, self._clock()))
        return False

    async def join(self) -> None:
        """Take a member's row and learn the others (before the first request comes)."""
        if not self.db.shared:
            return
        live = await self.db.run(partial(members.join, member=self.member))
        self._joined = True
        self._view(live)

    async def leave(self) -> None:
        """Give the share back (a clean stop): the others take it at their next beat."""
        if self._joined and self.db.is_open:
            self._joined = False
            await self.db.run(partial(members.leave, member=self.member))

    async def run(self) -> None:
        """Beat until cancelled; a beat the database refuses is tried again at the next one."""
        while True:
            await asyncio.sleep(BEAT_S)
            if not self._joined:
                continue
            try:
                await self.beat()
            except Exception as exc:
                level = logging.DEBUG if unavailable(exc) else logging.WARNING  # outages: the store says
                log.log(level, "membership beat failed (%s: %s)", type(exc).__name__, exc)

    async def beat(self) -> None:
        self._view(await self.db.run(partial(members.beat, member=self.member)))
        await self.settle()

    async def settle(self) -> None:
        """Drop parked events decided meanwhile; hand back those that are ours to take now."""
        now = self._clock()
        due = [p for p in self._parked.values() if now - p.since >= CHECK_AFTER_S]
        if not due:
            return
        decided = await self.db.run(partial(members.decided, event_ids=sorted({p.event.id for p in due})))
        taken = []
        for parked in due:
            if decided and parked.event.id in decided:
                self._forget(parked, "decided")
            elif self._ours_now(parked, now):
                self._forget(parked, "taken_over")
                taken.append(parked)
        if taken:
            log.info(
                "taking over %d request(s) no other daemon decided (the oldest waited %.1f s)",
                len(taken),
                now - min(p.since for p in taken),
            )
        if taken and self.handback is not None:  # a task: a full queue must not delay the beats
            task = asyncio.ensure_future(self._hand_back(self.handback, taken))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _hand_back(handback: Callable[[Event, str], Awaitable[None]], taken: list[_Parked]) -> None:
        for parked in taken:
            await handback(parked.event, parked.relay)

    def _ours_now(self, parked: _Parked, now: float) -> bool:
        """Undecided: ours once its owner has left, or once it waited ``takeover_s``."""
        return now - parked.since >= self.takeover_s or owner_of(parked.event.id, self.members) == self.member

    def _forget(self, parked: _Parked, outcome: str) -> None:
        del self._parked[parked.event]
        if outcome == "decided":
            self._settled[parked.event.id] = None
            if len(self._settled) > SETTLED_CAPACITY:
                self._settled.popitem(last=False)
        if self.on_settled is not None:
            self.on_settled(outcome)

    def _view(self, live: Sequence[str]) -> None:
        view = tuple(sorted({*live, self.member}))
        if view != self.members:
            log.info("%d daemon(s) share the requests", len(view))
        self.members = view

"""Leases: of several daemons on one database, one runs the singletons, and another takes over
when it dies.

The singletons are the reply retry loop, the retention pass and the announcement. Each would
be harmless twice but wasteful (every due reply published by every daemon). One lease, named
``leader``, covers them all: every daemon's heartbeat tries to take or renew it every second,
and another daemon takes it once it has gone :data:`LEADER_TTL_S` without renewal (a killed
daemon), or at once when its holder gives it back on shutdown. On SQLite (one daemon per file)
every check says yes without touching the database.

Mail claims are not taken over by these leases: another daemon sends a dead daemon's claimed mail
once the claims' own lease has passed (``dvm.mailer.outbox``). A takeover keyed on a run's
heartbeat was tried and dropped: a live daemon's heartbeat can fall behind (its one database
connection busy, clocks up to 10 s apart each way), and then two live daemons would send.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from functools import partial

from dvm.store.database import Store, immediate, unavailable

log = logging.getLogger("sigit.store")

LEADER = "leader"
LEADER_TTL_S = 15
"""How long a leader that stopped renewing keeps the lease: the takeover delay after a crash."""
HEARTBEAT_S = 1.0
MAX_CLOCK_SKEW_S = 10
"""How far a daemon's clock may be from the database server's (``dvm.store.postgres`` refuses a
daemon further off): leases and mail claims are stamped by one daemon's clock and judged by
another's, so two daemons may be up to twice this apart."""


def take(conn: sqlite3.Connection, name: str, holder: str, now: int, ttl_s: int) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``now + ttl_s``, unless someone else
    holds it past ``now``; return whether ``holder`` holds it. One row upsert: atomic on both
    backends (no write lock needed)."""
    with immediate(conn, exclusive=False):
        conn.execute(
            "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
            "WHERE leases.holder = excluded.holder OR leases.until <= ?",
            (name, holder, now + ttl_s, now),
        )
        row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] == holder


def give_back(conn: sqlite3.Connection, holder: str) -> int:
    """Release every lease ``holder`` has (a clean shutdown): others take over at once."""
    with immediate(conn, exclusive=False):
        return int(conn.execute("DELETE FROM leases WHERE holder = ?", (holder,)).rowcount)


def holder_of(conn: sqlite3.Connection, name: str, now: int) -> str | None:
    row = conn.execute("SELECT holder FROM leases WHERE name = ? AND until > ?", (name, now)).fetchone()
    return None if row is None else str(row[0])


class Leader:
    """This daemon's claim to the ``leader`` lease: :meth:`run` beats every second in a task of
    its own, so neither a slow publication nor a long pruning pass delays it."""

    def __init__(self, db: Store, holder: str, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.holder = holder
        self._clock = clock
        self.is_leader = not db.shared
        self._told = False  # the first check says which role this daemon has, later ones changes

    async def run(self) -> None:
        """Beat until cancelled; a beat the database refuses is retried at the next one."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.check()
            except Exception as exc:
                level = logging.DEBUG if unavailable(exc) else logging.WARNING  # outages: the store says
                log.log(level, "lease heartbeat failed (%s: %s)", type(exc).__name__, exc)

    async def check(self) -> bool:
        """Beat now: take or renew the leader's lease; True while leading."""
        if not self.db.shared:
            return True
        now = int(self._clock())
        held = await self.db.run(partial(take, name=LEADER, holder=self.holder, now=now, ttl_s=LEADER_TTL_S))
        if held != self.is_leader or not self._told:
            log.info(
                "%s the singletons (reply retries, pruning, the announcement)",
                "now running" if held else "another daemon now runs",
            )
        self.is_leader, self._told = held, True
        return held

    async def step_down(self) -> None:
        if self.db.shared and self.db.is_open:
            await self.db.run(partial(give_back, holder=self.holder))
            self.is_leader = False

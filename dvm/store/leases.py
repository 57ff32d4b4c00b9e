"""Leases: of several daemons on one database, one runs the singletons, and another takes over
when it dies.

The singletons are the reply retry loop, the retention pass and the announcement. Each would
be harmless twice but wasteful (every due reply published by every daemon). One lease, named
``leader``, covers them all: every daemon's heartbeat tries to take or renew it every second,
and another daemon takes it once it has gone :data:`LEADER_TTL_S` without renewal (a killed
daemon), or at once when its holder gives it back on shutdown. The same heartbeat renews each
run's own lease (:data:`RUN_TTL_S`), which tells the others when a run's mail claims are free.
On SQLite (one daemon per file) every check says yes without touching the database.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from functools import partial

from dvm.store.database import Store, immediate

log = logging.getLogger("sigit.store")

LEADER = "leader"
LEADER_TTL_S = 15
"""How long a leader that stopped renewing keeps the lease: the takeover delay after a crash."""
RUN_TTL_S = 15
"""Each daemon run also renews a lease of its own (``run:<run id>``, the id its mail claims carry):
once that has lapsed the run is dead, and others take its mail claims at once instead of waiting
out the claims' lease (``dvm.mailer.outbox.claim_due``)."""
HEARTBEAT_S = 1.0
RUN_ROWS_KEPT_S = 24 * 3600
"""Dead runs' rows are deleted after this long (their claims were taken long before)."""


def run_lease(holder: str) -> str:
    return f"run:{holder}"


def heartbeat(conn: sqlite3.Connection, holder: str, now: int) -> bool:
    """Renew this run's own lease and take or renew the leader's, in one transaction; drop the
    rows of runs dead for a day. Return whether ``holder`` leads."""
    with immediate(conn, exclusive=False):
        conn.execute(
            "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until",
            (run_lease(holder), holder, now + RUN_TTL_S),
        )
        conn.execute("DELETE FROM leases WHERE name LIKE 'run:%' AND until < ?", (now - RUN_ROWS_KEPT_S,))
    return take(conn, LEADER, holder, now, LEADER_TTL_S)


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
    """This daemon's leases (see the module docstring): :meth:`run` beats every second in a task
    of its own, so neither a slow publication nor a long pruning pass delays it."""

    def __init__(self, db: Store, holder: str, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.holder = holder
        self._clock = clock
        self.is_leader = not db.shared

    async def run(self) -> None:
        """Beat until cancelled; a beat the database refuses is retried at the next one."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.check()
            except Exception as exc:
                log.warning("lease heartbeat failed (%s: %s)", type(exc).__name__, exc)

    async def check(self) -> bool:
        """Beat now: renew this run's lease, take or renew the leader's; True while leading."""
        if not self.db.shared:
            return True
        now = int(self._clock())
        held = await self.db.run(partial(heartbeat, holder=self.holder, now=now))
        if held != self.is_leader:
            log.info(
                "%s the singletons (reply retries, pruning, the announcement)",
                "now running" if held else "another daemon now runs",
            )
        self.is_leader = held
        return held

    async def step_down(self) -> None:
        if self.db.shared and self.db.is_open:
            await self.db.run(partial(give_back, holder=self.holder))
            self.is_leader = False

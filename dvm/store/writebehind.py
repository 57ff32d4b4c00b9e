"""Reply marks that ride along in the next transaction instead of paying for one.

A reply published (or refused by every relay, and due again later) is a fact learnt after its
commit; writing each in a transaction of its own costs a commit apiece. The marks wait here
instead, as data (:class:`~dvm.outbox.ReplyMark`): the next batch of requests takes them into its
transaction (``take``), and when no batch comes within ``delay_s`` they go in one transaction of
their own (kept and retried while the database refuses writes, and put back if the batch that
took them rolls back). Losing them in a crash only repeats work whose repetition nobody sees: a
reply published again is the same event, which relays and clients take once. For the same reason
their own transaction does not wait for fsync (:func:`~dvm.store.database.run_unsynced`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterable

from dvm.outbox import ReplyMark
from dvm.store.database import Store, immediate, run_unsynced, unavailable
from dvm.store.repository import Bookkeeping, write_bookkeeping

log = logging.getLogger("sigit.store")

RETRY_S = 1.0  # after a failed write (locked or full database)


class WriteBehind:
    def __init__(self, db: Store, delay_s: float) -> None:
        self.db = db
        self.delay_s = delay_s
        self._pending: list[ReplyMark] = []
        self._since = 0.0  # loop time the oldest queued update was added
        self._timer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> tuple[ReplyMark, ...]:
        """What is waiting for a transaction."""
        return tuple(self._pending)

    def add(self, marks: Iterable[ReplyMark]) -> None:
        """Queue ``marks``: idempotent, and harmless to lose in a crash (see above)."""
        marks = list(marks)
        if not marks:
            return
        if not self._pending:
            self._since = asyncio.get_running_loop().time()
        self._pending.extend(marks)
        if not self._closed and (self._timer is None or self._timer.done()):
            self._timer = asyncio.ensure_future(self._flush_later())

    def take(self) -> Bookkeeping | None:
        """Everything queued, for the caller's transaction (and no longer queued)."""
        if not self._pending:
            return None
        marks, self._pending = tuple(self._pending), []
        return marks

    def put_back(self, marks: Bookkeeping | None) -> None:
        """Marks taken by a transaction that rolled back: they wait for the next one."""
        if marks:
            self.add(marks)

    async def flush(self) -> bool:
        """Write what is queued now, in a transaction of its own; on a database error keep it
        queued. Return whether it was written."""
        along = self.take()
        if along is None:
            return True
        try:
            await run_unsynced(self.db, lambda conn: _in_transaction(conn, along))
        except Exception as exc:
            level = logging.DEBUG if unavailable(exc) else logging.WARNING  # outages: the store says
            log.log(level, "bookkeeping not written yet (%s: %s); retrying", type(exc).__name__, exc)
            self._pending[:0] = along
            return False
        return True

    async def close(self) -> None:
        """Write what is queued, once, and schedule nothing more."""
        self._closed = True
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if not await self.flush():
            log.error("bookkeeping lost at shutdown: the next run may publish or send it again")

    async def _flush_later(self) -> None:
        """Write what no batch took within ``delay_s`` of being queued; retry every ``RETRY_S``
        while the database refuses. Under steady load batches take everything and this only sleeps."""
        loop = asyncio.get_running_loop()
        while self._pending and not self._closed:
            wait = self._since + self.delay_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # a batch may have taken them meanwhile
            if not await self.flush():
                await asyncio.sleep(RETRY_S)


def _in_transaction(conn: sqlite3.Connection, marks: Bookkeeping) -> None:
    with immediate(conn, exclusive=False):  # rows of its own replies: PostgreSQL's row locks suffice
        write_bookkeeping(conn, marks)

"""Retention: delete what no reader needs any more, in small transactions, and give the space back.

Left alone the database grows with every request (measured: 1.5 MB per 1,000 requests, mostly
``requests``). What goes, and when nothing reads it any more:

- ``requests``: once a replay would be refused anyway (its ``created_at`` is outside the window,
  plus the subscription's margin) and its reply was published or has expired (``reply_ttl_s``);
  ``retention.request_keep_s`` keeps them longer for ``events`` and ``stats``.
- ``sessions``: untouched for longer than anything a session holds can still be used (its code's
  life, ``activation_window_s``, ``account_session_s``), plus a code's life (a client coming back
  that late is told ``code_expired`` or ``session_expired``, not ``no_session``).
- ``code_sends``, ``code_send_minutes``: older than the caps' window (``code_window_s``, and
  :data:`CLOCK_MARGIN_S`); ``codes``: a code's life after they expired (a request that joins a
  code keeps it alive; an expired one is kept that long to answer ``code_expired`` rather than a
  wrong code; the caps count ``code_sends``, not codes); ``code_failures``: older than the
  guessing budget's window (``code_failure_window_s``, and the margin); ``seals``: past the
  end of their own window.
- ``mail``: sent or dead, queued longer ago than ``retention.mail_s``.
- ``users``: never verified, created longer ago than ``retention.unverified_s``, and no session
  touched since then (sessions go after :func:`session_keep_s`; erased like an admin deletion:
  sessions, code records and mail go too).
- ``audit``: older than ``retention.audit_s``.

Every keep is derived from the settings it serves (:meth:`Cutoffs.at`); the settings' own floors
(``code_ttl_s`` and ``activation_window_s`` a minute, ``code_failure_window_s`` an hour) bound it
from below, so a soak with short settings reaches its steady state in minutes.

Each step deletes at most ``retention.batch_rows`` rows in one ``BEGIN IMMEDIATE`` transaction on
the daemon's connection, so the event loop never waits long; a pass repeats a step until it
deletes fewer. Then ``PRAGMA incremental_vacuum`` returns up to ``retention.vacuum_pages`` free
pages to the file system (``auto_vacuum = INCREMENTAL``, set on new databases by
:func:`dvm.store.database.connect`; :meth:`Retention.prepare` converts an older one once, with a
VACUUM, before the daemon serves).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from dvm.config import Settings
from dvm.store.database import Store, immediate, unavailable
from dvm.store.leases import Leader
from dvm.store.repository import erase_user

log = logging.getLogger("sigit.store")

DAY_S = 86400
CLOCK_MARGIN_S = 60
"""Counters are kept this much past the window that reads them: daemons sharing a database
(PostgreSQL) may disagree on the time by a few seconds, and a minute bucket is whole."""
INCREMENTAL = 2  # PRAGMA auto_vacuum


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows older than these (Unix seconds) are no longer read by anything."""

    request_created: int
    request_processed: int
    reply_expired: int
    session_updated: int
    code_sent: int
    code_expired: int
    code_failed: int
    seal_until: int
    mail_created: int
    unverified_created: int
    audit_at: int

    @classmethod
    def at(cls, settings: Settings, now: int) -> Cutoffs:
        service, keep = settings.service, settings.retention
        rules = service.rules().accounts
        replay_s = service.created_at_window_s + settings.relays.since_margin_s
        return cls(
            request_created=now - replay_s,
            request_processed=now - keep.request_keep_s,
            reply_expired=now - service.reply_ttl_s,
            session_updated=now - session_keep_s(settings),
            code_sent=now - rules.code_window_s - CLOCK_MARGIN_S,
            code_expired=now - rules.code_ttl_s - CLOCK_MARGIN_S,
            code_failed=now - rules.code_failure_window_s - CLOCK_MARGIN_S,
            seal_until=now,
            mail_created=now - keep.mail_s,
            unverified_created=now - keep.unverified_s,
            audit_at=now - keep.audit_s,
        )


def session_keep_s(settings: Settings) -> int:
    """How long a session is kept after its last change: while its code, its verified signup
    (``activation_window_s``) or its right to act for the account (``account_session_s``) may
    still be used, and a code's life more, so a late client hears why rather than
    ``no_session``."""
    service = settings.service
    usable_s = max(service.code_ttl_s, service.activation_window_s, service.account_session_s)
    return usable_s + service.code_ttl_s


@dataclass
class Pruned:
    """Rows deleted per table in one pass, and pages given back."""

    rows: dict[str, int] = field(default_factory=dict)
    pages: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


# --- one step each: at most ``limit`` rows, in the caller's transaction ---------------------------


def prune_requests(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE created_at < ? "
        "AND processed_at < ? AND (published_at IS NOT NULL OR processed_at < ?) LIMIT ?)",
        (cut.request_created, cut.request_processed, cut.reply_expired, limit),
    ).rowcount


def prune_sessions(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE updated_at < ? LIMIT ?)",
        (cut.session_updated, limit),
    ).rowcount


def prune_code_sends(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM code_sends WHERE rowid IN (SELECT rowid FROM code_sends WHERE sent_at < ? LIMIT ?)",
        (cut.code_sent, limit),
    ).rowcount


def prune_code_send_minutes(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM code_send_minutes WHERE (scope, minute) IN "
        "(SELECT scope, minute FROM code_send_minutes WHERE minute < ? LIMIT ?)",
        (cut.code_sent // 60, limit),
    ).rowcount


def prune_code_failures(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM code_failures WHERE rowid IN (SELECT rowid FROM code_failures WHERE at < ? LIMIT ?)",
        (cut.code_failed, limit),
    ).rowcount


def prune_codes(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM codes WHERE id IN (SELECT id FROM codes WHERE expires_at < ? LIMIT ?)",
        (cut.code_expired, limit),
    ).rowcount


def prune_seals(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    return conn.execute(
        "DELETE FROM seals WHERE id IN (SELECT id FROM seals WHERE until < ? LIMIT ?)",
        (cut.seal_until, limit),
    ).rowcount


def _first_young_id(conn: sqlite3.Connection, table: str, column: str, cutoff: int) -> int:
    """The lowest id at or past ``cutoff``: ids grow with time, so the scan from the oldest row
    stops at the first young one instead of reading the whole table (there is no index on time)."""
    row = conn.execute(
        f"SELECT id FROM {table} WHERE {column} >= ? ORDER BY id LIMIT 1",  # noqa: S608 (fixed names)
        (cutoff,),
    ).fetchone()
    if row is not None:
        return int(row[0])
    top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]  # noqa: S608
    return 0 if top is None else int(top) + 1


def prune_mail(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    below = _first_young_id(conn, "mail", "created_at", cut.mail_created)
    return conn.execute(
        "DELETE FROM mail WHERE id IN (SELECT id FROM mail WHERE id < ? AND status IN ('sent', 'dead') "
        "ORDER BY id LIMIT ?)",
        (below, limit),
    ).rowcount


def prune_audit(conn: sqlite3.Connection, cut: Cutoffs, limit: int) -> int:
    below = _first_young_id(conn, "audit", "at", cut.audit_at)
    return conn.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE id < ? ORDER BY id LIMIT ?)",
        (below, limit),
    ).rowcount


def prune_unverified(conn: sqlite3.Connection, cut: Cutoffs, limit: int, after_rowid: int) -> tuple[int, int]:
    """Erase never-verified users among the next ``limit`` users (in rowid order, from
    ``after_rowid``) that are old enough; return (erased, the rowid to continue from).

    Users are scanned in slices, from a mark kept by the caller, because most of them are
    accounts that stay: a whole-table scan on every pass would grow with the service."""
    rows = conn.execute(
        "SELECT rowid, id, verified, created_at FROM users WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after_rowid, limit),
    ).fetchall()
    erased, mark = 0, after_rowid
    for rowid, user_id, verified, created_at in rows:
        if created_at >= cut.unverified_created:
            break  # rowids grow with time: the rest are younger; scan from here next time
        mark = rowid
        if verified:
            continue
        recent = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE user_id = ? AND updated_at >= ?)",
            (user_id, cut.unverified_created),
        ).fetchone()[0]
        if not recent:
            erase_user(conn, user_id, record=False)  # nobody's erasure: no erased_addresses row
            erased += 1
    return erased, mark


Step = Callable[[sqlite3.Connection, Cutoffs, int], int]
STEPS: dict[str, Step] = {
    "requests": prune_requests,
    "sessions": prune_sessions,
    "code_sends": prune_code_sends,
    "code_send_minutes": prune_code_send_minutes,
    "code_failures": prune_code_failures,
    "codes": prune_codes,
    "seals": prune_seals,
    "mail": prune_mail,
    "audit": prune_audit,
}


def incremental_vacuum(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to ``pages`` free pages back, in a transaction of its own; return how many went.

    Through ``executescript``: ``execute`` steps the pragma once, which frees a single page."""
    before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if before and pages:
        try:
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pages)}); COMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def convert_to_incremental(conn: sqlite3.Connection) -> bool:
    """Switch an older database to ``auto_vacuum = INCREMENTAL`` (a VACUUM rewrites the file once).
    Return whether it had to."""
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == INCREMENTAL:
        return False
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    temp_store = int(conn.execute("PRAGMA temp_store").fetchone()[0])
    conn.execute("PRAGMA temp_store = FILE")  # VACUUM copies the whole file: not into memory
    try:
        conn.execute("VACUUM")
    finally:
        conn.execute(f"PRAGMA temp_store = {temp_store}")
    return True


class Retention:
    """The daemon's pruning timer: :meth:`prepare` once before serving, then :meth:`run`."""

    def __init__(
        self,
        db: Store,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        leader: Leader | None = None,
    ) -> None:
        self.db = db
        self.leader = leader or Leader(db, "", clock)
        self.settings = settings
        self._clock = clock
        self._users_mark = 0  # rowid up to which users were checked (see prune_unverified)
        self._mark_since = 0.0  # the mark starts over daily: a user skipped for recent activity
        self.on_pruned: Callable[[Pruned], None] | None = None  # e.g. metrics

    async def prepare(self) -> None:
        """Convert a database made before incremental vacuum (once; the daemon does not serve yet)."""
        if self.db.dialect != "sqlite":  # PostgreSQL's autovacuum gives space back by itself
            return
        started = time.monotonic()
        converted = await self.db.run(_convert_waiting)
        if converted:
            ms = (time.monotonic() - started) * 1000
            log.info("database converted to incremental vacuum (once, %.0f ms)", ms)

    async def run(self) -> None:
        """Prune every ``retention.interval_s`` until cancelled; a failing pass is retried next time."""
        while True:
            await asyncio.sleep(self.settings.retention.interval_s)
            try:
                if self.leader.is_leader:  # one daemon prunes a shared database
                    await self.prune()
            except Exception as exc:  # a locked or full database: nothing half-done, try next time
                expected = unavailable(exc)  # then the store logs the outage, once
                log.log(
                    logging.DEBUG if expected else logging.ERROR,
                    "retention pass failed (%s: %s); retrying later",
                    type(exc).__name__,
                    exc,
                    exc_info=not expected,
                )

    async def prune(self) -> Pruned:
        """One pass over every table, then an incremental vacuum."""
        keep = self.settings.retention
        cut = Cutoffs.at(self.settings, int(self._clock()))
        pruned = Pruned()
        # Users first: whether a signup was active lately is read from its sessions.
        pruned.rows["users"] = await self._unverified(cut, keep.batch_rows)
        for table, step in STEPS.items():
            pruned.rows[table] = await self._repeat(_bound(step, cut, keep.batch_rows))
        if self.db.dialect == "sqlite":
            pruned.pages = await self.db.run(partial(incremental_vacuum, pages=keep.vacuum_pages))
        if pruned.total or pruned.pages:
            counts = ", ".join(f"{table} {n}" for table, n in pruned.rows.items() if n)
            log.info("retention: deleted %s; %d page(s) given back", counts or "nothing", pruned.pages)
        if self.on_pruned is not None:
            self.on_pruned(pruned)
        return pruned

    async def _repeat(self, step: Callable[[sqlite3.Connection], int]) -> int:
        total = 0
        limit = self.settings.retention.batch_rows
        while True:
            deleted = await self.db.run(partial(_in_transaction, step=step))
            total += deleted
            if deleted < limit:
                return total
            await asyncio.sleep(0)  # let requests in between transactions

    async def _unverified(self, cut: Cutoffs, limit: int) -> int:
        total = 0
        if time.monotonic() - self._mark_since >= DAY_S:  # is seen again once that activity is old
            self._users_mark, self._mark_since = 0, time.monotonic()
        while True:
            before = self._users_mark
            erased, self._users_mark = await self.db.run(
                partial(_unverified_in_transaction, cut=cut, limit=limit, after_rowid=before)
            )
            total += erased
            if self._users_mark == before:
                return total
            await asyncio.sleep(0)


def _bound(step: Step, cut: Cutoffs, limit: int) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: step(conn, cut, limit)


def _in_transaction(conn: sqlite3.Connection, step: Callable[[sqlite3.Connection], int]) -> int:
    with immediate(conn):
        return step(conn)


def _unverified_in_transaction(
    conn: sqlite3.Connection, cut: Cutoffs, limit: int, after_rowid: int
) -> tuple[int, int]:
    with immediate(conn):
        return prune_unverified(conn, cut, limit, after_rowid)


def _convert_waiting(conn: sqlite3.Connection) -> bool:
    """As :func:`convert_to_incremental`, waiting for other processes' locks like the CLI does."""
    timeout = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute("PRAGMA busy_timeout = 5000")
    try:
        return convert_to_incremental(conn)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout}")

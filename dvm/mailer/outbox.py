"""The mail outbox table: claim due rows under a lease, then mark them sent, retried or dead.

Claiming pushes ``next_attempt_at`` forward by a lease, so a crashed sender's rows come back by
themselves and two workers never send one row at once. A row is ``sent`` only after the server
accepted it. ``params`` are sealed (:mod:`dvm.store.sealed`) and stay so here; a code mail's are
erased once it is sent or dead, so a code is never in the database in clear, and not at all after.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from dvm.accounts.decision import MailKind
from dvm.outbox import MailClaim, OutboxMail
from dvm.store.database import dialect, immediate

__all__ = ["MailClaim", "OutboxMail", "Outcome", "claim_due", "metrics", "record", "renew"]

CODE_KINDS = frozenset(kind for kind in MailKind if kind.value.endswith("_code"))
"""Kinds whose params hold a code: erased when the mail is sent or dead."""


@dataclass(frozen=True, slots=True)
class MailMetrics:
    queued: int
    sent: int
    dead: int
    retried: int  # rows that needed more than one attempt (any status)
    oldest_queued_age_s: int


_CLAIM = (
    "SELECT id, message_id, kind, recipient, params, attempts, created_at, lang FROM mail "
    "WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
)


def claim_due(
    conn: sqlite3.Connection, now: int, limit: int, lease_s: int, claimer: str = ""
) -> list[OutboxMail]:
    """Take up to ``limit`` due rows for ``claimer``, counting the attempt and leasing them."""
    # On PostgreSQL, row locks instead of the write lock: daemons claiming together each take
    # rows nobody else holds (FOR UPDATE SKIP LOCKED) and never wait for a deciding transaction.
    sql = _CLAIM + (" FOR UPDATE SKIP LOCKED" if dialect(conn) == "postgresql" else "")
    with immediate(conn, exclusive=False):
        rows = conn.execute(sql, (now, limit)).fetchall()
        conn.executemany(
            "UPDATE mail SET attempts = attempts + 1, next_attempt_at = ?, claimed_by = ? WHERE id = ?",
            [(now + lease_s, claimer or None, row[0]) for row in rows],
        )
    return [
        OutboxMail(row[0], row[1], MailKind(row[2]), row[3], row[4], row[5] + 1, row[6], row[7])
        for row in rows
    ]


def renew(conn: sqlite3.Connection, mail: OutboxMail, claimer: str, now: int, lease_s: int) -> bool:
    """Extend ``claimer``'s lease on ``mail`` to ``now + lease_s`` if the claim is still its own;
    False when the row was claimed again since (by another daemon, or a later pass once the lease
    ran out) or is no longer queued: then it is not this claim's to send."""
    with immediate(conn, exclusive=False):
        return (
            conn.execute(
                "UPDATE mail SET next_attempt_at = ? WHERE id = ? AND status = 'queued' "
                "AND claimed_by = ? AND attempts = ?",
                (now + lease_s, mail.id, claimer, mail.attempts),
            ).rowcount
            == 1
        )


def _scrubbed(mail: OutboxMail) -> str:
    return "" if mail.kind in CODE_KINDS else mail.params


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed row: sent, retry at a time, or dead with a reason."""

    mail: OutboxMail
    status: str  # "sent" | "retry" | "dead"
    error: str = ""
    at: int = 0  # sent_at, or the next attempt


def record(conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
    """Record outcomes in one transaction: the mail worker writes each as soon as it is known."""
    with immediate(conn, exclusive=False):
        for o in outcomes:
            _mark(conn, o)


def _mark(conn: sqlite3.Connection, o: Outcome) -> None:
    if o.status == "sent":
        conn.execute(
            "UPDATE mail SET status = 'sent', sent_at = ?, last_error = '', params = ?, "
            "claimed_by = NULL "
            "WHERE id = ? AND status = 'queued'",
            (o.at, _scrubbed(o.mail), o.mail.id),
        )
    elif o.status == "retry":  # only while the claim is still this one (attempts: its number)
        conn.execute(
            "UPDATE mail SET next_attempt_at = ?, last_error = ?, claimed_by = NULL "
            "WHERE id = ? AND status = 'queued' AND attempts = ?",
            (o.at, o.error[:500], o.mail.id, o.mail.attempts),
        )
    else:
        conn.execute(
            "UPDATE mail SET status = 'dead', last_error = ?, params = ?, claimed_by = NULL "
            "WHERE id = ? AND status = 'queued' AND attempts = ?",
            (o.error[:500], _scrubbed(o.mail), o.mail.id, o.mail.attempts),
        )


def release_claims(conn: sqlite3.Connection, claimer: str, now: int) -> int:
    """Make mail claimed by earlier (dead) worker runs due now, instead of after their lease."""
    with immediate(conn):
        return int(
            conn.execute(
                "UPDATE mail SET next_attempt_at = ?, claimed_by = NULL "
                "WHERE status = 'queued' AND claimed_by IS NOT NULL AND claimed_by <> ?",
                (now, claimer),
            ).rowcount
        )


def metrics(conn: sqlite3.Connection, now: int) -> MailMetrics:
    row = conn.execute(
        "SELECT "
        "  count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'sent'), "
        "  count(*) FILTER (WHERE status = 'dead'), count(*) FILTER (WHERE attempts > 1), "
        "  min(CASE WHEN status = 'queued' THEN created_at END) "
        "FROM mail"
    ).fetchone()
    oldest = 0 if row[4] is None else max(0, now - int(row[4]))
    return MailMetrics(int(row[0]), int(row[1]), int(row[2]), int(row[3]), oldest)

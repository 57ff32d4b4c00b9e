"""Members: the daemons alive on a shared PostgreSQL database, among which requests are split.

Each daemon holds a lease row ``member:<its run id>`` in ``leases`` and renews it every second
(:func:`beat`); one whose row goes :data:`MEMBER_TTL_S` without renewal (killed, cut off) drops
out of the others' view at their next beat, and a daemon that stops cleanly deletes its row
(:func:`leave`). The rows are stamped and judged by the database server's clock, so the
daemons' own clocks play no part. ``dvm.ownership`` splits the requests among the members.
SQLite has one daemon and no member rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

PREFIX = "member:"
MEMBER_TTL_S = 5
"""How long a member that stopped renewing stays in the others' view: new requests of its share
wait at most this long (``dvm.ownership``'s takeover catches the ones it had already)."""
FORGET_S = 3600
"""Lapsed member rows are deleted this long after they lapsed (when a daemon joins)."""

_NOW = "CAST(extract(epoch FROM clock_timestamp()) AS BIGINT)"
_BEAT = f"""
WITH renewed AS (
    INSERT INTO leases (name, holder, until) VALUES (?, ?, {_NOW} + ?)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
    RETURNING holder
)
SELECT holder FROM renewed
UNION
SELECT holder FROM leases WHERE name LIKE '{PREFIX}%' AND until > {_NOW}
"""  # noqa: S608 (constants only)


def beat(conn: sqlite3.Connection, member: str, ttl_s: int = MEMBER_TTL_S) -> tuple[str, ...]:
    """Renew ``member``'s row and return the live members, sorted (itself among them): one
    statement, atomic on its own."""
    rows = conn.execute(_BEAT, (PREFIX + member, member, ttl_s)).fetchall()
    return tuple(sorted(str(r[0]) for r in rows))


def join(conn: sqlite3.Connection, member: str, ttl_s: int = MEMBER_TTL_S) -> tuple[str, ...]:
    """The first beat; rows of members long gone are deleted first."""
    conn.execute(
        f"DELETE FROM leases WHERE name LIKE '{PREFIX}%' AND until < {_NOW} - ?",  # noqa: S608
        (FORGET_S,),
    )
    return beat(conn, member, ttl_s)


def leave(conn: sqlite3.Connection, member: str) -> None:
    """Delete ``member``'s row: the others take its share at their next beat."""
    conn.execute("DELETE FROM leases WHERE name = ?", (PREFIX + member,))


def decided(conn: sqlite3.Connection, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` some daemon has decided (their request rows are committed)."""
    rows = conn.execute("SELECT event_id FROM requests WHERE event_id = ANY(?)", (list(event_ids),))
    return {str(r[0]) for r in rows}

"""Read-only views of the database for operators. Codes, entropy and backups are never shown."""

from __future__ import annotations

import sqlite3
from typing import Any

from dvm.mailer import outbox
from dvm.store import repository

SESSION_COLUMNS = (
    "sessions.pubkey AS pubkey, users.email AS email, purpose, state, attempts, "
    "code_sent_at, code_expires_at, verified_at, sessions.created_at AS created_at"
)


def sessions(
    conn: sqlite3.Connection,
    now: int,
    *,
    state: str | None = None,
    email: str | None = None,
    older_than_s: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    where: list[str] = ["1"]
    args: list[str | int] = []
    if state:
        where.append("state = ?")
        args.append(state)
    if email:
        where.append("users.email LIKE ?")
        args.append(f"%{email.lower()}%")
    if older_than_s is not None:
        where.append("sessions.created_at <= ?")
        args.append(now - older_than_s)
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id "  # noqa: S608 (fixed columns; values bound)
        f"WHERE {' AND '.join(where)} ORDER BY sessions.created_at DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_session_dict(row, now) for row in rows]


def session(conn: sqlite3.Connection, pubkey: str, now: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id "  # noqa: S608
        "WHERE sessions.pubkey = ?",
        (pubkey,),
    ).fetchone()
    return None if row is None else _session_dict(row, now)


def _session_dict(row: sqlite3.Row, now: int) -> dict[str, Any]:
    data = dict(row)
    data["code_expires_in_s"] = max(0, data["code_expires_at"] - now) if data["state"] == "pending" else None
    data["locked"] = data["state"] == "locked"
    return data


def find_user(conn: sqlite3.Connection, ref: str) -> dict[str, Any] | None:
    """A user by id, email (normalised lower-case) or account pubkey."""
    user = repository.find_user(conn, ref)
    return None if user is None else _user_dict(user.id, conn)


def _user_dict(user_id: str, conn: sqlite3.Connection) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, email, verified, activated, pubkey, pending_email, grace_deadline, notify_login, "
        "length(bkp) AS backup_bytes, length(bkp_previous) > 0 AS has_previous_backup, "
        "created_at, updated_at "
        "FROM users WHERE id = ?",
        (user_id,),
    ).fetchone()
    data = dict(row)
    for key in ("verified", "activated", "notify_login", "has_previous_backup"):
        data[key] = bool(data[key])
    data["sessions"] = conn.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (user_id,)).fetchone()[
        0
    ]
    return data


def users(conn: sqlite3.Connection, search: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    args: tuple[Any, ...] = (limit,)
    where = "1"
    if search:
        where = "email LIKE ? OR pubkey = ? OR pending_email LIKE ?"
        pattern = f"%{search.lower()}%"
        args = (pattern, search.lower(), pattern, limit)
    rows = conn.execute(
        "SELECT id, email, verified, activated, pubkey, pending_email, created_at FROM users "  # noqa: S608
        f"WHERE {where} ORDER BY created_at DESC LIMIT ?",
        args,
    ).fetchall()
    out = []
    for row in rows:
        data = dict(row)
        data["verified"], data["activated"] = bool(data["verified"]), bool(data["activated"])
        out.append(data)
    return out


def mail(conn: sqlite3.Connection, status: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, kind, recipient, status, attempts, last_error, created_at, next_attempt_at, sent_at "
        "FROM mail WHERE status = ? ORDER BY id DESC LIMIT ?",
        (status, limit),
    ).fetchall()
    return [dict(row) for row in rows]


def events(
    conn: sqlite3.Connection, *, outcome: str | None = None, method: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    where, args = ["1"], []
    if outcome:
        where.append("outcome = ?")
        args.append(outcome)
    if method:
        where.append("method = ?")
        args.append(method)
    rows = conn.execute(
        "SELECT event_id, pubkey, method, outcome, created_at, processed_at, "  # noqa: S608
        "published_at IS NOT NULL AS published FROM requests "
        f"WHERE {' AND '.join(where)} ORDER BY processed_at DESC, rowid DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [dict(row) | {"published": bool(row["published"])} for row in rows]


def stats(conn: sqlite3.Connection, now: int, days: int = 7) -> dict[str, Any]:
    """Per-day counts (UTC) of the flow's steps, codes sent, failures, and the mail backlog."""
    since = now - days * 86400
    per_day: dict[str, dict[str, int]] = {}
    counted = {
        ("request_account", "ok"): "signups",
        ("verify_code", "ok"): "verifications",
        ("activate", "ok"): "activations",
        ("request_login", "ok"): "logins",
    }
    for day, method, outcome, count in conn.execute(
        "SELECT date(processed_at, 'unixepoch') AS day, method, outcome, count(*) FROM requests "
        "WHERE processed_at >= ? GROUP BY day, method, outcome",
        (since,),
    ):
        row = per_day.setdefault(
            day, {"signups": 0, "verifications": 0, "activations": 0, "logins": 0, "codes": 0}
        )
        name = counted.get((method, outcome))
        if name:
            row[name] += count
    for day, count in conn.execute(
        "SELECT date(sent_at, 'unixepoch') AS day, count(*) FROM code_sends WHERE sent_at >= ? GROUP BY day",
        (since,),
    ):
        per_day.setdefault(day, {"signups": 0, "verifications": 0, "activations": 0, "logins": 0, "codes": 0})
        per_day[day]["codes"] = count
    failures = dict(
        conn.execute(
            "SELECT outcome, count(*) FROM requests WHERE processed_at >= ? AND outcome <> 'ok' "
            "GROUP BY outcome ORDER BY count(*) DESC",
            (since,),
        ).fetchall()
    )
    m = outbox.metrics(conn, now)
    return {
        "days": [{"day": day, **counts} for day, counts in sorted(per_day.items())],
        "failures": failures,
        "mail": {
            "queued": m.queued,
            "sent": m.sent,
            "dead": m.dead,
            "retried": m.retried,
            "oldest_queued_age_s": m.oldest_queued_age_s,
        },
        "users": conn.execute("SELECT count(*) FROM users").fetchone()[0],
        "activated_users": conn.execute("SELECT count(*) FROM users WHERE activated = 1").fetchone()[0],
    }


def audit(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [dict(row) for row in rows]

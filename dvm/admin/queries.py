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
    where: list[str] = ["TRUE"]
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


def user(conn: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    """One user as admins see it: no entropy, no backups (their sizes only), never a code.

    ``last_login_at`` is when a login code last matched; ``last_seen`` (SIGit's column) when the
    account was activated or last logged in; ``last_request_at`` when the service last
    answered a request from the account's key or one of its sessions' keys (while those records
    are kept)."""
    row = conn.execute(
        "SELECT id, email, verified, activated, pubkey, pending_email, grace_deadline, notify_login, "
        "length(bkp) AS backup_bytes, length(bkp_previous) > 0 AS has_previous_backup, "
        "suspended_at, last_login_at, last_seen, created_at, updated_at "
        "FROM users WHERE id = ?",
        (user_id,),
    ).fetchone()
    data = dict(row)
    for key in ("verified", "activated", "notify_login", "has_previous_backup"):
        data[key] = bool(data[key])
    data["suspended"] = data["suspended_at"] is not None
    keys = _keys(conn, user_id, data["pubkey"])
    marks = ", ".join("?" * len(keys))
    data["last_request_at"] = conn.execute(
        f"SELECT max(processed_at) FROM requests WHERE pubkey IN ({marks})",  # noqa: S608
        keys,
    ).fetchone()[0]
    data["sessions"] = conn.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (user_id,)).fetchone()[
        0
    ]
    return {key: data[key] for key in USER_FIELDS}


USER_FIELDS = (
    "id",
    "email",
    "verified",
    "activated",
    "suspended",
    "suspended_at",
    "pubkey",
    "pending_email",
    "grace_deadline",
    "notify_login",
    "backup_bytes",
    "has_previous_backup",
    "sessions",
    "last_login_at",
    "last_seen",
    "last_request_at",
    "created_at",
    "updated_at",
)
"""``users show``'s fields, in the order shown."""


def _keys(conn: sqlite3.Connection, user_id: str, account_pubkey: str) -> list[str]:
    """The account's key and its sessions' keys: what its requests were signed with."""
    keys = [r[0] for r in conn.execute("SELECT pubkey FROM sessions WHERE user_id = ?", (user_id,))]
    return [*keys, account_pubkey] if account_pubkey else keys or [""]


def export(conn: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    """Everything stored about one person (a GDPR access request), secrets withheld.

    The account; its sessions (no code HMACs); when codes were sent; its mail (template values
    without codes); its requests (method, outcome, times; replies are encrypted to the person's
    own keys); the audit rows about it; the blocks that name its address or domain. Entropy and
    key backups are not exported: the person gets them back by logging in.
    """
    account = user(conn, user_id)
    sessions = [
        dict(r)
        for r in conn.execute(
            "SELECT pubkey, purpose, state, attempts, code_sent_at, code_expires_at, verified_at, "
            "created_at, updated_at FROM sessions WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        )
    ]
    # The counters name no address (salted hashes): look up every address the person was mailed at.
    addresses = {account["email"], account["pending_email"]} | {
        r[0] for r in conn.execute("SELECT recipient FROM mail WHERE user_id = ?", (user_id,))
    }
    counter_keys = sorted({repository.mailbox_counter_key(conn, a) for a in addresses if a})
    marks = ", ".join("?" * len(counter_keys))
    codes_sent = [
        {"sent_at": r[0]}
        for r in conn.execute(
            f"SELECT sent_at FROM code_sends WHERE mailbox IN ({marks}) ORDER BY sent_at",  # noqa: S608
            counter_keys,
        )
    ]
    mails = []
    for r in conn.execute(
        "SELECT id, kind, recipient, params, status, attempts, last_error, created_at, sent_at "
        "FROM mail WHERE user_id = ? ORDER BY id",
        (user_id,),
    ):
        item = dict(r)
        del item["params"]  # sealed at rest (they may hold a code); kind and recipient say what it was
        mails.append(item)
    keys = _keys(conn, user_id, account["pubkey"])
    marks = ", ".join("?" * len(keys))
    requests = [
        dict(r) | {"published": bool(r["published"])}
        for r in conn.execute(
            "SELECT event_id, pubkey, method, outcome, created_at, processed_at, "  # noqa: S608
            f"published_at IS NOT NULL AS published FROM requests WHERE pubkey IN ({marks}) "
            "ORDER BY processed_at",
            keys,
        )
    ]
    audit_rows = [
        dict(r)
        for r in conn.execute(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
    ]
    block_keys = repository.block_keys(account["email"])
    marks = ", ".join("?" * len(block_keys))
    blocks_found = [
        dict(r)
        for r in conn.execute(
            f"SELECT value, kind, reason, created_at FROM blocks WHERE value IN ({marks})",  # noqa: S608
            block_keys,
        )
    ]
    return {
        "account": account,
        "sessions": sessions,
        "codes_sent": codes_sent,
        "mail": mails,
        "requests": requests,
        "audit": audit_rows,
        "blocks": blocks_found,
        "withheld": ["entropy", "backup", "previous_backup", "code HMACs"],
    }


def users(
    conn: sqlite3.Connection, search: str | None = None, limit: int = 100, *, suspended: bool = False
) -> list[dict[str, Any]]:
    where, args = ["TRUE"], []
    if search:
        where.append("(email LIKE ? OR pubkey LIKE ? OR id LIKE ? OR pending_email LIKE ?)")
        pattern = f"%{search.lower()}%"
        args += [pattern, f"{search.lower()}%", f"{search.lower()}%", pattern]
    if suspended:
        where.append("suspended_at IS NOT NULL")
    rows = conn.execute(
        "SELECT id, email, verified, activated, suspended_at IS NOT NULL AS suspended, pubkey, "  # noqa: S608
        f"pending_email, created_at FROM users WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    out = []
    for row in rows:
        data = dict(row)
        for key in ("verified", "activated", "suspended"):
            data[key] = bool(data[key])
        out.append(data)
    return out


def erased(conn: sqlite3.Connection, email: str) -> dict[str, Any]:
    """Whether a user with this (normalised) address was erased, and when and by whom."""
    found = repository.erased_address(conn, email)
    if found is None:
        return {"email": email, "erased": False, "erased_at": None, "erased_by": None}
    return {"email": email, "erased": True, "erased_at": found.erased_at, "erased_by": found.erased_by}


def blocks(conn: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT value, kind, reason, created_at, actor FROM blocks ORDER BY created_at DESC, value LIMIT ?",
        (limit,),
    ).fetchall()
    return [dict(row) for row in rows]


MAIL_TIME_COLUMN = {"queued": "next_attempt_at", "sent": "sent_at"}
"""The one time, besides ``created_at``, that means something for mail in a status (dead mail has
none: the outbox does not keep when it was given up)."""


def mail(conn: sqlite3.Connection, status: str, limit: int = 100) -> list[dict[str, Any]]:
    """Mail in ``status``, newest first, with the time that matters for it: when it is tried next
    (queued) or when the server accepted it (sent)."""
    when = MAIL_TIME_COLUMN.get(status)
    extra = f", {when}" if when else ""
    rows = conn.execute(
        f"SELECT id, kind, recipient, status, attempts, last_error, created_at{extra} "  # noqa: S608 (fixed names)
        "FROM mail WHERE status = ? ORDER BY id DESC LIMIT ?",
        (status, limit),
    ).fetchall()
    return [dict(row) for row in rows]


def events(
    conn: sqlite3.Connection, *, outcome: str | None = None, method: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    where, args = ["TRUE"], []
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


DAY_COUNTS = ("signups", "codes_verified", "activations", "login_requests", "codes_sent", "blocked")
"""Per-day counts in ``stats``, named for what they count: ``signups`` (request_account and
register answered ok), ``codes_verified`` (verify_code ok: signups and logins alike),
``activations``, ``login_requests`` (request_login ok: a code asked for, not a login done),
``codes_sent`` (code mails queued), ``blocked`` (requests refused with ``email_blocked``)."""


def stats(conn: sqlite3.Connection, now: int, days: int = 7) -> dict[str, Any]:
    """Per-day counts (UTC) of the flow's steps, codes sent, failures, and the mail backlog."""
    since = now - days * 86400
    per_day: dict[str, dict[str, int]] = {}
    counted = {
        ("request_account", "ok"): "signups",
        ("register", "ok"): "signups",  # its activation is the verify_code that follows
        ("verify_code", "ok"): "codes_verified",
        ("activate", "ok"): "activations",
        ("request_login", "ok"): "login_requests",
    }
    for day, method, outcome, count in conn.execute(
        "SELECT date(processed_at, 'unixepoch') AS day, method, outcome, count(*) FROM requests "
        "WHERE processed_at >= ? GROUP BY day, method, outcome",
        (since,),
    ):
        row = per_day.setdefault(day, dict.fromkeys(DAY_COUNTS, 0))
        name = "blocked" if outcome == "email_blocked" else counted.get((method, outcome))
        if name:
            row[name] += count
    for day, count in conn.execute(
        "SELECT date(sent_at, 'unixepoch') AS day, count(*) FROM code_sends WHERE sent_at >= ? GROUP BY day",
        (since,),
    ):
        per_day.setdefault(day, dict.fromkeys(DAY_COUNTS, 0))
        per_day[day]["codes_sent"] = count
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
        "suspended_users": conn.execute(
            "SELECT count(*) FROM users WHERE suspended_at IS NOT NULL"
        ).fetchone()[0],
        "blocks": dict.fromkeys(("address", "domain"), 0)
        | dict(conn.execute("SELECT kind, count(*) FROM blocks GROUP BY kind").fetchall()),
    }


def audit(
    conn: sqlite3.Connection, limit: int = 100, *, action: str | None = None, actor: str | None = None
) -> list[dict[str, Any]]:
    where, args = ["TRUE"], []
    if action:
        where.append("action = ?")
        args.append(action)
    if actor:
        where.append("actor = ?")
        args.append(actor)
    rows = conn.execute(
        "SELECT id, at, actor, action, target, detail FROM audit "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [dict(row) for row in rows]

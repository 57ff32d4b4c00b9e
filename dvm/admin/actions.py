"""Operator actions. Each is one short ``BEGIN IMMEDIATE`` transaction that also writes its audit
row, so it is safe on the live database while the daemon runs, and never half done.

Actions that touch codes or accounts go through the same pure state machine as requests
(:mod:`dvm.accounts.machine`'s ``admin_*`` functions) and the same outbox, so an operator's
resend or email change follows the same rules and mails as a user's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from dvm.accounts.decision import Decision, Failure
from dvm.accounts.email_address import normalise_email
from dvm.accounts.machine import Context, admin_change_email, admin_delete, admin_resend_code, admin_unlock
from dvm.accounts.rows import UserRow
from dvm.errors import DVMError, RequestError
from dvm.store import repository
from dvm.store.database import immediate
from dvm.store.sealed import ParamsSeal


class AdminError(DVMError):
    """An admin action that cannot be done (not found, wrong state)."""


def audit(conn: sqlite3.Connection, now: int, actor: str, action: str, target: str, detail: str = "") -> None:
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, target, detail),
    )


def _apply(conn: sqlite3.Connection, decision: Decision, ctx: Context) -> None:
    if isinstance(decision.reply, Failure):
        raise AdminError(decision.reply.message)
    repository.apply_writes(conn, decision.writes)
    for mail in decision.mails:
        repository.queue_mail(conn, mail, ctx.rng(16).hex(), None, ctx.now, seal=ParamsSeal(ctx.code_secret))


def _session_action(
    conn: sqlite3.Connection,
    pubkey: str,
    ctx: Context,
    actor: str,
    action: str,
    decide: Callable[..., Decision],
) -> None:
    with immediate(conn):
        session = repository.session_by_pubkey(conn, pubkey)
        user = repository.user_by_id(conn, session.user_id) if session and session.user_id else None
        if session is None or user is None:
            raise AdminError(f"no session for {pubkey}")
        try:
            decision = decide(session, user, ctx)
        except RequestError as exc:
            raise AdminError(exc.message) from exc
        _apply(conn, decision, ctx)
        audit(conn, ctx.now, actor, action, pubkey, f"user {user.id}")


def resend_code(conn: sqlite3.Connection, pubkey: str, ctx: Context, actor: str) -> None:
    """A new code for a pending session, mailed to the session's address."""
    _session_action(conn, pubkey, ctx, actor, "resend-code", admin_resend_code)


def unlock_session(conn: sqlite3.Connection, pubkey: str, ctx: Context, actor: str) -> None:
    """Unlock a locked session and mail a new code."""
    _session_action(conn, pubkey, ctx, actor, "unlock-session", admin_unlock)


def change_email(conn: sqlite3.Connection, user_ref: str, new_email: str, ctx: Context, actor: str) -> str:
    """Move an account to a new address (checked out of band); the old address is told."""
    try:
        email = normalise_email(new_email)
    except RequestError as exc:
        raise AdminError(exc.message) from exc
    with immediate(conn):
        user = _user(conn, user_ref)
        holder = repository.user_by_email(conn, email)
        try:
            decision = admin_change_email(user, email, holder, ctx)
        except RequestError as exc:
            raise AdminError(exc.message) from exc
        _apply(conn, decision, ctx)
        audit(conn, ctx.now, actor, "change-email", user.id, f"{user.email} -> {email}")
    return email


def delete_user(
    conn: sqlite3.Connection, user_ref: str, ctx: Context, actor: str, *, notify: bool = True
) -> str:
    """Erase an account, its sessions, code records and mail (GDPR); return its id."""
    with immediate(conn):
        user = _user(conn, user_ref)
        _apply(conn, admin_delete(user, ctx, notify=notify), ctx)
        audit(conn, ctx.now, actor, "delete-user", user.id, "notified" if notify else "not notified")
    return user.id


def purge_sessions(conn: sqlite3.Connection, now: int, older_than_s: int, actor: str) -> int:
    """Delete sessions untouched for ``older_than_s`` (finished, locked or long expired)."""
    with immediate(conn):
        count = conn.execute("DELETE FROM sessions WHERE updated_at <= ?", (now - older_than_s,)).rowcount
        conn.execute("DELETE FROM code_sends WHERE sent_at <= ?", (now - max(older_than_s, 3600),))
        audit(conn, now, actor, "purge-sessions", f"{count} sessions", f"older than {older_than_s} s")
    return int(count)


def retry_mail(conn: sqlite3.Connection, mail_id: int, now: int, actor: str) -> None:
    """Queue a dead letter again (not code emails: their code was scrubbed; resend a code instead)."""
    with immediate(conn):
        row = conn.execute("SELECT status, kind FROM mail WHERE id = ?", (mail_id,)).fetchone()
        if row is None:
            raise AdminError(f"no mail {mail_id}")
        if row[0] != "dead":
            raise AdminError(f"mail {mail_id} is {row[0]}, not dead")
        if row[1].endswith("_code"):
            raise AdminError("code emails cannot be re-sent (the code is gone); use 'sessions resend-code'")
        conn.execute(
            "UPDATE mail SET status = 'queued', attempts = 0, next_attempt_at = ?, last_error = '' "
            "WHERE id = ?",
            (now, mail_id),
        )
        audit(conn, now, actor, "retry-mail", str(mail_id), row[1])


def purge_mail(conn: sqlite3.Connection, now: int, older_than_s: int, actor: str) -> int:
    """Delete sent and dead mail older than ``older_than_s`` (queued mail is never purged)."""
    with immediate(conn):
        count = conn.execute(
            "DELETE FROM mail WHERE status IN ('sent', 'dead') AND created_at <= ?", (now - older_than_s,)
        ).rowcount
        audit(conn, now, actor, "purge-mail", f"{count} mails", f"older than {older_than_s} s")
    return int(count)


def _user(conn: sqlite3.Connection, ref: str) -> UserRow:
    user = repository.find_user(conn, ref)
    if user is None:
        raise AdminError(f"no user {ref!r} (give an id, an email or a pubkey)")
    return user

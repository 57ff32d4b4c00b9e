"""Operator actions. Each is one short ``BEGIN IMMEDIATE`` transaction that also writes its audit
row, so it is safe on the live database while the daemon runs, and never half done.

Actions that touch codes or accounts go through the same pure state machine as requests
(:mod:`dvm.accounts.machine`'s ``admin_*`` functions) and the same outbox, so an operator's
resend or email change follows the same rules and mails as a user's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from dvm.accounts import code_rules, machine
from dvm.accounts.decision import Decision, Failure, View
from dvm.accounts.machine import Context
from dvm.accounts.rows import SessionRow, UserRow
from dvm.admin import lookup
from dvm.errors import AdminError, InvalidValue, RequestError
from dvm.protocol.email_address import canonical_mailbox, normalise_email
from dvm.store import repository
from dvm.store.database import dialect, immediate
from dvm.store.sealed import ParamsSeal, UnsealError


def audit(
    conn: sqlite3.Connection,
    now: int,
    actor: str,
    action: str,
    target: str,
    detail: str = "",
    user_id: str | None = None,
) -> None:
    """One audit row; ``user_id`` ties it to the user it concerns (erasure scrubs those rows)."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail, user_id) VALUES (?, ?, ?, ?, ?, ?)",
        (now, actor, action, target, detail, user_id),
    )


def _apply(conn: sqlite3.Connection, decision: Decision, ctx: Context) -> None:
    if isinstance(decision.reply, Failure):
        raise AdminError(decision.reply.message)
    if decision.mails and not ctx.code_secret:
        # Sealed under an empty secret, the mail would be dead-lettered by every worker (issue 25).
        raise AdminError("this action queues mail: it needs the code secret (a command's context bug)")
    repository.apply_writes(conn, decision.writes)
    for mail in decision.mails:
        repository.queue_mail(conn, mail, ctx.rng(16).hex(), None, ctx.now, seal=ParamsSeal(ctx.code_secret))


def _decide(decide: Callable[[], Decision]) -> Decision:
    try:
        return decide()
    except RequestError as exc:
        raise AdminError(exc.message) from exc


def _session_action(
    conn: sqlite3.Connection,
    ref: str,
    ctx: Context,
    actor: str,
    action: str,
    decide: Callable[[SessionRow, UserRow, Context, View], Decision],
) -> str:
    with immediate(conn):
        pubkey = lookup.session(conn, ref)
        session = repository.session_by_pubkey(conn, pubkey)
        user = repository.user_by_id(conn, session.user_id) if session and session.user_id else None
        if session is None or user is None:
            raise AdminError(f"no session for {pubkey}")
        if user.suspended_at is not None:
            raise AdminError(f"the account {user.id} is suspended; unsuspend it first")
        rules = ctx.rules
        view = repository.load_view(  # the session's address, codes and wrong codes: a long code if due
            conn,
            pubkey,
            None,
            None,
            ctx.now,
            rules.code_window_s,
            account_key=False,
            code_to="session",
            failures=True,
            failure_window_s=rules.code_failure_window_s,
            code_ttl_s=rules.code_ttl_s,
            counted=code_rules.counted(rules),
        )
        _apply(conn, _decide(lambda: decide(session, user, ctx, view)), ctx)
        audit(conn, ctx.now, actor, action, pubkey, f"user {user.id}", user.id)
    return pubkey


def resend_code(conn: sqlite3.Connection, ref: str, ctx: Context, actor: str) -> str:
    """A new code for a pending session, mailed to the session's address; its whole key."""
    return _session_action(conn, ref, ctx, actor, "resend-code", machine.admin_resend_code)


def unlock_session(conn: sqlite3.Connection, ref: str, ctx: Context, actor: str) -> str:
    """Unlock a locked session and mail a new code; its whole key."""
    return _session_action(conn, ref, ctx, actor, "unlock-session", machine.admin_unlock)


def change_email(conn: sqlite3.Connection, user_ref: str, new_email: str, ctx: Context, actor: str) -> str:
    """Move an account to a new address (checked out of band); the old address is told.

    The address must be free by the user path's rules: nobody's address, no other account's
    unconfirmed change (reserved until its grace deadline), and not blocked."""
    try:
        email = normalise_email(new_email)
    except RequestError as exc:
        raise InvalidValue(f"{new_email!r} is not a valid address: {exc.message}") from exc
    with immediate(conn):
        user = lookup.user(conn, user_ref)
        if repository.is_blocked(conn, email):
            raise AdminError(f"{email} is blocked (see 'sigit-dvm blocks list'); remove the block first")
        holder = repository.user_by_email(conn, email)
        rivals = repository.users_by_pending_email(conn, email)
        decision = _decide(lambda: machine.admin_change_email(user, email, holder, rivals, ctx))
        _apply(conn, decision, ctx)
        audit(conn, ctx.now, actor, "change-email", user.id, f"{user.email} -> {email}", user.id)
    return email


@dataclass(frozen=True, slots=True)
class Deleted:
    """A user erased: whether a notice was queued, and whether the WAL could be checkpointed (until
    it is, older copies of the erased rows may remain in the ``-wal`` file)."""

    user_id: str
    notified: bool
    checkpointed: bool


def delete_user(
    conn: sqlite3.Connection, user_ref: str, ctx: Context, actor: str, *, notify: bool = True
) -> Deleted:
    """Erase an account (GDPR): sessions, code records, mail, addresses in the audit log."""
    with immediate(conn):
        user = lookup.user(conn, user_ref)
        decision = machine.admin_delete(user, ctx, notify=notify, by=f"admin {actor}")
        _apply(conn, decision, ctx)
        notified = bool(decision.mails)
        detail = "notified" if notified else ("not notified" if notify else "not notified (--no-notify)")
        if notify and not user.verified:
            detail = "not notified (address never verified)"
        audit(conn, ctx.now, actor, "delete-user", user.id, detail, user.id)
    return Deleted(user.id, notified, checkpoint(conn))


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and truncate it; False when a reader kept it from finishing.

    SQLite only: on PostgreSQL the erased rows leave the table files at the next (auto)vacuum,
    and the server's WAL archive and backups keep them as long as the operator keeps those."""
    if dialect(conn) != "sqlite":
        return True
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


def _user_action(
    conn: sqlite3.Connection,
    user_ref: str,
    ctx: Context,
    actor: str,
    action: str,
    decide: Callable[[UserRow, Context], Decision],
) -> UserRow:
    with immediate(conn):
        user = lookup.user(conn, user_ref)
        _apply(conn, _decide(lambda: decide(user, ctx)), ctx)
        audit(conn, ctx.now, actor, action, user.id, "", user.id)
    return user


def suspend_user(conn: sqlite3.Connection, user_ref: str, ctx: Context, actor: str) -> UserRow:
    """Every request of the account is refused (``account_suspended``) until unsuspended."""
    return _user_action(conn, user_ref, ctx, actor, "suspend-user", machine.admin_suspend)


def unsuspend_user(conn: sqlite3.Connection, user_ref: str, ctx: Context, actor: str) -> UserRow:
    return _user_action(conn, user_ref, ctx, actor, "unsuspend-user", machine.admin_unsuspend)


def restore_backup(conn: sqlite3.Connection, user_ref: str, ctx: Context, actor: str) -> UserRow:
    """Swap the account's backup with the one its last ``update_backup`` replaced; owner told."""
    return _user_action(conn, user_ref, ctx, actor, "restore-backup", machine.admin_restore_backup)


def block_target(raw: str) -> tuple[str, str]:
    """``(value, kind)`` of what an admin asks to block: a mailbox (the canonical form of the
    address: its ``+tag``, case and Gmail-dot variants reach the same inbox), or a domain."""
    text = raw.strip()
    if "@" in text:
        try:
            return canonical_mailbox(normalise_email(text)), "address"
        except RequestError as exc:
            raise InvalidValue(f"{raw!r} is not a valid address: {exc.message}") from exc
    try:
        address = normalise_email(f"x@{text.lstrip('@')}")
    except RequestError as exc:
        raise InvalidValue(f"{raw!r} is neither an address nor a domain") from exc
    return address.partition("@")[2], "domain"


def add_block(conn: sqlite3.Connection, raw: str, reason: str, now: int, actor: str) -> tuple[str, str]:
    """Block an address or a domain (and its subdomains) at signup, login and email change."""
    value, kind = block_target(raw)
    with immediate(conn):
        if conn.execute("SELECT 1 FROM blocks WHERE value = ?", (value,)).fetchone():
            raise AdminError(f"{value} is already blocked")
        conn.execute(
            "INSERT INTO blocks (value, kind, reason, created_at, actor) VALUES (?, ?, ?, ?, ?)",
            (value, kind, reason, now, actor),
        )
        audit(conn, now, actor, "block", value, reason)
    return value, kind


def remove_block(conn: sqlite3.Connection, raw: str, now: int, actor: str) -> str:
    value, _ = block_target(raw)
    with immediate(conn):
        if not conn.execute("DELETE FROM blocks WHERE value = ?", (value,)).rowcount:
            raise AdminError(f"{value} is not blocked")
        audit(conn, now, actor, "unblock", value)
    return value


def purge_sessions(conn: sqlite3.Connection, now: int, older_than_s: int, actor: str) -> int:
    """Delete sessions untouched for ``older_than_s`` (finished, locked or long expired)."""
    with immediate(conn):
        count = conn.execute("DELETE FROM sessions WHERE updated_at <= ?", (now - older_than_s,)).rowcount
        counted = now - max(older_than_s, 24 * 3600)  # no cap or budget looks further back
        conn.execute("DELETE FROM code_sends WHERE sent_at <= ?", (counted,))
        conn.execute("DELETE FROM code_send_minutes WHERE minute <= ?", (counted // 60,))
        conn.execute("DELETE FROM code_failures WHERE at <= ?", (counted,))
        audit(conn, now, actor, "purge-sessions", f"{count} sessions", f"older than {older_than_s} s")
    return int(count)


def purge_audit(conn: sqlite3.Connection, now: int, older_than_s: int, actor: str) -> int:
    """Delete audit rows older than ``older_than_s``; the purge itself is the newest row."""
    with immediate(conn):
        count = conn.execute("DELETE FROM audit WHERE at <= ?", (now - older_than_s,)).rowcount
        audit(conn, now, actor, "purge-audit", f"{count} rows", f"older than {older_than_s} s")
    return int(count)


def retry_mail(conn: sqlite3.Connection, mail_id: int, now: int, actor: str, seal: ParamsSeal) -> bool:
    """Queue a dead letter again (not code emails: their code was scrubbed; resend a code instead).

    Its values must open with ``seal`` (the code secret's), or it would only die again. A notice
    that sigit-dvm 0.1's admin CLI sealed with an empty secret (issue 25) is sealed again with the
    real one: True when that was done."""
    with immediate(conn):
        row = conn.execute(
            "SELECT status, kind, user_id, params, message_id FROM mail WHERE id = ?", (mail_id,)
        ).fetchone()
        if row is None:
            raise AdminError(f"no mail {mail_id}")
        status, kind, user_id, params, token = row
        if status != "dead":
            raise AdminError(f"mail {mail_id} is {status}, not dead")
        if kind.endswith("_code"):
            raise AdminError("code emails cannot be re-sent (the code is gone); use 'sessions resend-code'")
        resealed = False
        try:
            seal.open(params, token)
        except UnsealError:
            try:
                params = seal.seal(ParamsSeal(b"").open(params, token), token)
            except UnsealError as exc:
                raise AdminError(
                    f"mail {mail_id}'s values do not open with this code secret (sealed under another "
                    "one); it cannot be sent"
                ) from exc
            resealed = True
        conn.execute(
            "UPDATE mail SET status = 'queued', attempts = 0, next_attempt_at = ?, last_error = '', "
            "params = ? WHERE id = ?",
            (now, params, mail_id),
        )
        audit(
            conn,
            now,
            actor,
            "retry-mail",
            str(mail_id),
            kind + (" (sealed again)" if resealed else ""),
            user_id,
        )
    return resealed


def purge_requests(
    conn: sqlite3.Connection, now: int, older_than_s: int, replay_s: int, reply_ttl_s: int, actor: str
) -> int:
    """Delete request records processed more than ``older_than_s`` ago, but never one that could
    still be replayed (``created_at`` within ``replay_s``: it would be decided again) or whose
    reply is still waiting to be published (unless it expired)."""
    with immediate(conn):
        count = conn.execute(
            "DELETE FROM requests WHERE processed_at <= ? AND created_at < ? "
            "AND (published_at IS NOT NULL OR processed_at < ?)",
            (now - older_than_s, now - replay_s, now - reply_ttl_s),
        ).rowcount
        audit(conn, now, actor, "purge-requests", f"{count} requests", f"older than {older_than_s} s")
    return int(count)


def purge_mail(conn: sqlite3.Connection, now: int, older_than_s: int, actor: str) -> int:
    """Delete sent and dead mail older than ``older_than_s`` (queued mail is never purged)."""
    with immediate(conn):
        count = conn.execute(
            "DELETE FROM mail WHERE status IN ('sent', 'dead') AND created_at <= ?", (now - older_than_s,)
        ).rowcount
        audit(conn, now, actor, "purge-mail", f"{count} mails", f"older than {older_than_s} s")
    return int(count)

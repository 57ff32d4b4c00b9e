"""Operator actions (the admin CLI): the same rows and rules as the users' own requests, without
the caps and cooldowns an operator does not need."""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts.code_rules import renew
from dvm.accounts.decision import Decision, DeleteUser, Mail, MailKind, PutUser, Success, View
from dvm.accounts.rows import SessionRow, SessionState, UserRow
from dvm.accounts.table import Context
from dvm.accounts.upkeep import cancel_pending_changes
from dvm.errors import AdminError, EmailTaken, InvalidEmail, NoSession


def admin_resend_code(session: SessionRow, user: UserRow, ctx: Context, view: View) -> Decision:
    """An operator's resend for a pending session: a new code is mailed to its mailbox."""
    if session.state is not SessionState.PENDING:
        raise NoSession(f"session is {session.state}, not pending")
    _not_void(session, user)
    return renew(session, user, view, ctx, forced=True)


def _not_void(session: SessionRow, user: UserRow) -> None:
    """A session the account moved past (a revocation, a new backup, a move) can never redeem a
    code: mailing one would only confuse its reader."""
    if session.auth_epoch != user.auth_epoch:
        raise NoSession("the account revoked its sessions since this one began: the user starts again")


def admin_unlock(session: SessionRow, user: UserRow, ctx: Context, view: View) -> Decision:
    """Unlock a locked session: attempts reset and a new code mailed to its mailbox."""
    if session.state is not SessionState.LOCKED:
        raise NoSession(f"session is {session.state}, not locked")
    _not_void(session, user)
    unlocked = replace(session, state=SessionState.PENDING, attempts=0)
    return renew(unlocked, user, view, ctx, forced=True)


def admin_change_email(
    user: UserRow, new_email: str, holder: UserRow | None, rivals: tuple[UserRow, ...], ctx: Context
) -> Decision:
    """The operator moves an account to an address checked out of band; the old one is told, and
    the account's sessions end (as for a change its owner confirms).

    The same rules as a confirmed change by the user: another verified account's address is
    refused; a signup never verified there is erased; other accounts' pending changes to it are
    cancelled and their requesters told (``rivals``: those accounts).
    """
    if holder is not None and holder.id != user.id and holder.verified:
        raise EmailTaken("That address belongs to another account.")
    if new_email == user.email:
        raise InvalidEmail("This is already the account's address.")
    unfinished = (DeleteUser(holder.id),) if holder is not None and holder.id != user.id else ()
    moved = replace(
        user,
        email=new_email,
        pending_email="",
        grace_deadline=None,
        updated_at=ctx.now,
        auth_epoch=user.auth_epoch + 1,
    )
    params: tuple[tuple[str, str | int], ...] = (("new_email", new_email), ("at", ctx.now))
    notice = Mail(MailKind.EMAIL_CHANGED, user.email, user.id, params, user.lang)
    cancelled, told = cancel_pending_changes(View(pending_users=rivals), moved, ctx)
    mails = ((notice,) if user.activated else ()) + told
    return Decision(Success(), (*unfinished, PutUser(moved), *cancelled), mails)


def admin_delete(user: UserRow, ctx: Context, *, notify: bool = True, by: str = "an admin") -> Decision:
    """Erase an account (GDPR); its owner is told unless ``notify`` is off or the address was
    never verified (a stranger may have typed it: they get no mail about an account not theirs)."""
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),), user.lang)
    tell = notify and user.verified
    return Decision(Success(), (DeleteUser(user.id, ctx.now, by),), (notice,) if tell else ())


def admin_suspend(user: UserRow, ctx: Context) -> Decision:
    """Suspend an account: every request it makes is refused with ``account_suspended``."""
    if user.suspended_at is not None:
        raise AdminError("the account is already suspended")
    return Decision(Success(), (PutUser(replace(user, suspended_at=ctx.now, updated_at=ctx.now)),))


def admin_unsuspend(user: UserRow, ctx: Context) -> Decision:
    """Lift a suspension."""
    if user.suspended_at is None:
        raise AdminError("the account is not suspended")
    return Decision(Success(), (PutUser(replace(user, suspended_at=None, updated_at=ctx.now)),))


def admin_restore_backup(user: UserRow, ctx: Context) -> Decision:
    """Put back the backup the last ``update_backup`` replaced (the two swap, so a second restore
    undoes the first); the owner is told, as for their own update, and the sessions end."""
    if not user.activated or not user.backup_previous:
        raise AdminError("the account has no previous backup to restore")
    restored = replace(
        user,
        backup=user.backup_previous,
        backup_previous=user.backup,
        updated_at=ctx.now,
        auth_epoch=user.auth_epoch + 1,
    )
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),), user.lang)
    return Decision(Success(), (PutUser(restored),), (notice,))

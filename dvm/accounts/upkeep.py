"""Account upkeep: the methods that act for an activated account (sealed by its key, or from a
session that proved its address less than ``account_session_s`` ago).

An email change mails a code to the new address and a notice to the old one, and reserves
nothing: the address's owner may still sign up with it, and whoever proves it first wins. The
change must be confirmed within ``email_grace_s``, counted from the first change of a pending
period. Sessions are revocable by the account: a confirmed change, a changed backup, a
``change_email`` sealed by the key (the key's holder reclaiming the account) and
``revoke_sessions`` end every other session's right to act (the account's ``auth_epoch`` moves).
"""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts.code_rules import decoy, open_session, redeem
from dvm.accounts.decision import (
    Decision,
    DeleteUser,
    Mail,
    MailKind,
    PutSession,
    PutUser,
    ReleaseChange,
    Success,
    View,
    Write,
)
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.table import CODE_ROWS, PRICED, C, Context, P, row, rule, then
from dvm.errors import (
    ChangeExpired,
    EmailTaken,
    InvalidEmail,
    NoSession,
    TooManyAttempts,
    UnknownAccount,
)
from dvm.protocol.methods import (
    ChangeEmail,
    ConfirmEmail,
    DeleteAccount,
    Method,
    RequestDeletion,
    RevokeSessions,
    SetNotifications,
    Status,
    UpdateBackup,
)
from dvm.protocol.results import Failure


def account(view: View) -> UserRow:
    """The activated account the request acts for, or ``unknown_account``."""
    user = view.account_user
    if user is None or not user.activated:
        raise UnknownAccount
    return user


def revoke_others(user: UserRow, view: View, ctx: Context) -> tuple[UserRow, tuple[Write, ...]]:
    """``user`` with a new ``auth_epoch``: every session's right to act for it ends, except the
    one acting now by session (it carries the new epoch)."""
    bumped = replace(user, auth_epoch=user.auth_epoch + 1, updated_at=ctx.now)
    session = view.session
    if view.account_via == "session" and session is not None:
        return bumped, (PutSession(replace(session, auth_epoch=bumped.auth_epoch, updated_at=ctx.now)),)
    return bumped, ()


@rule(
    Method.STATUS,
    row(None, None, "ok", "email, pending change, grace, preferences"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def status(request: Status, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    grace = None if user.grace_deadline is None else user.grace_deadline - ctx.now
    data = {
        "email": user.email,
        "verified": user.verified,
        "activated": user.activated,
        "pending_email": user.pending_email or None,
        "grace_s": grace if user.pending_email else None,
        "notifications": {"login_notice": user.notify_login},
        "created_at": user.created_at,
    }
    return then((None, None), Decision(Success(data)))


@rule(
    Method.CHANGE_EMAIL,
    row(
        None, P, "ok", "a session on the new address's code, notice to the old one (private mode: see there)"
    ),
    row(None, None, "ok", "back to the current address: the pending change is cancelled"),
    row(None, None, "email_taken", "the address belongs to another verified account"),
    row(None, None, "invalid_email", "already the account's address, nothing pending"),
    PRICED,
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def change_email(request: ChangeEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    if view.account_via == "key":  # the key's holder acts: other sessions end (a reclaim)
        user = replace(user, auth_epoch=user.auth_epoch + 1)
    if request.email == user.email:
        if not user.pending_email:
            raise InvalidEmail("This is already the account's address.")
        cancelled = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return then((None, None), Decision(Success(), (PutUser(cancelled),)))
    holder = view.email_user
    taken = holder is not None and holder.id != user.id and holder.verified
    if taken and not ctx.rules.private_mode:
        raise EmailTaken
    live = bool(user.pending_email) and grace_left(user, ctx)
    deadline = (
        user.grace_deadline if live and user.grace_deadline is not None else ctx.now + ctx.rules.email_grace_s
    )
    changing = replace(user, pending_email=request.email, grace_deadline=deadline, updated_at=ctx.now)
    if taken:  # private mode: answered as for a free address, but no code goes to its owner
        decision = decoy(pubkey, request.email, Purpose.EMAIL_CHANGE, view, ctx, changing)
        decision = replace(decision, writes=(PutUser(changing), *decision.writes))
    else:
        decision = open_session(pubkey, changing, Purpose.EMAIL_CHANGE, view, ctx, (PutUser(changing),))
    params: tuple[tuple[str, str | int], ...] = (("new_email", request.email), ("at", ctx.now))
    notice = Mail(MailKind.EMAIL_CHANGE_NOTICE, user.email, user.id, params, ctx.lang or user.lang)
    return replace(decision, mails=(*decision.mails, notice))


@rule(
    Method.CONFIRM_EMAIL,
    row(
        P,
        C,
        "ok",
        "code matches: the address switches, notice to the old one; rivals cancelled; sessions end",
    ),
    row(P, C, "change_expired", "the grace period ran out: the change lapses"),
    row(P, C, "email_taken", "the address was verified by someone else meanwhile: the change is released"),
    *CODE_ROWS,
    row(None, None, "no_session", "no pending email change for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def confirm_email(request: ConfirmEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    session = purpose_session(view, user, Purpose.EMAIL_CHANGE)
    if not user.pending_email:
        raise NoSession("There is no pending email change.")
    if view.session_address != user.pending_email:  # a later change replaced this one
        raise NoSession("This key's email change was replaced by a later one: confirm that one.")
    spent = replace(session, state=SessionState.CONSUMED, code_hmac="", updated_at=ctx.now)
    released = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
    if not grace_left(user, ctx):
        return then((P, C), Decision(Failure.of(ChangeExpired()), (PutUser(released), PutSession(spent))))
    used = redeem(session, user, request.code, view, ctx, sealed=view.account_via == "key")
    holder = view.email_user
    if holder is not None and holder.id != user.id and holder.verified:  # proven by its owner meanwhile
        return then((P, C), Decision(Failure.of(EmailTaken()), (*used, PutUser(released), PutSession(spent))))
    # A signup never verified does not own the address: whoever proves it wins, and this change did.
    unfinished = (DeleteUser(holder.id),) if holder is not None and holder.id != user.id else ()
    switched = replace(
        released, email=user.pending_email, auth_epoch=user.auth_epoch + 1, lang=ctx.lang or user.lang
    )
    spent = replace(spent, auth_epoch=switched.auth_epoch)
    params: tuple[tuple[str, str | int], ...] = (("new_email", user.pending_email), ("at", ctx.now))
    notice = Mail(MailKind.EMAIL_CHANGED, user.email, user.id, params, switched.lang)
    cancelled, told = cancel_pending_changes(view, switched, ctx)
    writes = (*used, *unfinished, PutUser(switched), PutSession(spent), *cancelled)
    return then((P, C), Decision(Success({"email": switched.email}), writes, (notice, *told)))


@rule(
    Method.UPDATE_BACKUP,
    row(None, None, "ok", "new backup stored, previous kept, notice mailed; other sessions end"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def update_backup(request: UpdateBackup, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    if request.backup == user.backup:
        return then((None, None), Decision(Success()))
    user, kept = revoke_others(user, view, ctx)
    updated = replace(user, backup=request.backup, backup_previous=user.backup, lang=ctx.lang or user.lang)
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),), updated.lang)
    return then((None, None), Decision(Success(), (PutUser(updated), *kept), (notice,)))


@rule(
    Method.SET_NOTIFICATIONS,
    row(None, None, "ok", "optional notices switched on or off"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def set_notifications(request: SetNotifications, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    updated = replace(user, notify_login=request.login_notice, updated_at=ctx.now)
    reply = Success({"notifications": {"login_notice": request.login_notice}})
    return then((None, None), Decision(reply, (PutUser(updated),)))


@rule(
    Method.REVOKE_SESSIONS,
    row(None, None, "ok", "every other session's right to act for the account ends"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def revoke_sessions(request: RevokeSessions, pubkey: str, view: View, ctx: Context) -> Decision:
    user, kept = revoke_others(account(view), view, ctx)
    return then((None, None), Decision(Success(), (PutUser(user), *kept)))


@rule(
    Method.REQUEST_DELETION,
    row(None, P, "ok", "a session on the account address's deletion code"),
    PRICED,
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def request_deletion(request: RequestDeletion, pubkey: str, view: View, ctx: Context) -> Decision:
    return open_session(pubkey, account(view), Purpose.DELETION, view, ctx)


@rule(
    Method.DELETE_ACCOUNT,
    row(P, None, "ok", "code matches: the account is erased, notice mailed"),
    *CODE_ROWS,
    row(None, None, "no_session", "no pending deletion for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def delete_account(request: DeleteAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = account(view)
    session = purpose_session(view, user, Purpose.DELETION)
    redeem(session, user, request.code, view, ctx, sealed=view.account_via == "key")  # goes with it
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),), ctx.lang or user.lang)
    return then((P, None), Decision(Success(), (DeleteUser(user.id),), (notice,)))


def purpose_session(view: View, user: UserRow, purpose: Purpose) -> SessionRow:
    """The event key's pending session for ``purpose`` on this account, or ``no_session``."""
    session = view.session
    if session is None or session.user_id != user.id or session.purpose is not purpose:
        raise NoSession
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.PENDING:
        raise NoSession
    return session


def grace_left(user: UserRow, ctx: Context) -> bool:
    return user.grace_deadline is not None and ctx.now < user.grace_deadline


def cancel_pending_changes(
    view: View, owner: UserRow, ctx: Context
) -> tuple[tuple[Write, ...], tuple[Mail, ...]]:
    """``owner`` proved the address: other accounts' pending changes to it end, and each
    requester is told at its current address."""
    writes: list[Write] = []
    mails: list[Mail] = []
    for other in view.pending_users:
        if other.id == owner.id or other.pending_email != owner.email:
            continue
        writes.append(ReleaseChange(other.id, other.pending_email, ctx.now))
        params: tuple[tuple[str, str | int], ...] = (("new_email", other.pending_email), ("at", ctx.now))
        mails.append(Mail(MailKind.EMAIL_CHANGE_CANCELLED, other.email, other.id, params, other.lang))
    return tuple(writes), tuple(mails)

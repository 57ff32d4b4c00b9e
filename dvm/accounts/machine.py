"""The account state machine: SIGit signup, verification, activation and login.

Rules, in prose (``TRANSITIONS`` below is the same, as data; docs/protocol.md is checked against it):

* A **user** goes unverified -> verified (a signup code matched; ``entropy`` is drawn once, then
  kept) -> activated (pubkey and backup stored). Activated implies verified. One user per email.
* A **session** belongs to one ephemeral key and one user, for one purpose (signup or login). It
  starts ``pending`` with a fresh code emailed. The right code before expiry moves a signup session
  to ``verified`` (reply: entropy) and a login session to ``consumed`` (reply: entropy, pubkey and
  backup). Each wrong code counts; the ``max_code_attempts``-th wrong code locks the session. A
  verified signup session may activate within ``activation_window_s``, then it is ``consumed``.
* Codes are single use, expire after ``code_ttl_s``, are stored only as an HMAC, and at most
  ``max_codes_per_email_per_hour`` are sent to one address per hour. ``resend_code`` replaces the
  code of a pending session after ``resend_cooldown_s``; the old code stops working.
* Requesting an account for an email that is activated answers ``email_taken`` (go to login), and
  so does any other step of a signup session whose account another session has activated; for an
  email whose signup was never finished it starts a new signup session (the owner proves the
  address again). A repeated request from the same key for the same pending session is a no-op
  success, so a client may retry without triggering a second email.

* **Account upkeep** is signed by the account's own key (``unknown_account`` otherwise). An email
  change reserves the new address at once, mails a code to it and a notice to the old one; login
  keeps using the confirmed address until ``confirm_email`` switches it (a notice goes to the old
  address). The change must be confirmed within ``email_grace_s``: the deadline is set by the
  first change of a pending period and NOT moved by further changes before confirmation; past it
  the change lapses (``change_expired``) and the reservation is released. ``status`` reports the
  deadline as signed seconds (positive: time left; negative: overdue). ``update_backup`` keeps the
  previous backup; deleting an account needs a fresh code (``request_deletion``) and erases it.
* In **private mode**, ``request_account`` and ``request_login`` answer ``ok`` whatever the
  address: an existing account's owner is mailed a login code (so the browser continues as a
  login), an unfinished signup gets a signup code, an unknown address gets nothing.

Everything here is pure: ``decide`` gets the rows, the request, ``now`` and an ``rng`` and returns
a :class:`~dvm.accounts.decision.Decision`. Refusals that change nothing are raised as
``RequestError`` inside and turned into a reply at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from dvm.accounts import codes
from dvm.accounts.decision import (
    Decision,
    DeleteUser,
    Failure,
    Mail,
    MailKind,
    PutSession,
    PutUser,
    RecordCodeSend,
    Success,
    View,
    Write,
)
from dvm.accounts.policy import check_policy
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import (
    AdminError,
    AlreadyActivated,
    ChangeExpired,
    CodeExpired,
    CodeInvalid,
    EmailTaken,
    InvalidEmail,
    NoSession,
    NotActivated,
    NotVerified,
    PubkeyTaken,
    RateLimited,
    RequestError,
    SessionExpired,
    TooManyAttempts,
    UnknownAccount,
    UnknownEmail,
)
from dvm.nostr.keys import Rng
from dvm.protocol.methods import (
    Activate,
    ChangeEmail,
    ConfirmEmail,
    DeleteAccount,
    Request,
    RequestAccount,
    RequestDeletion,
    RequestLogin,
    ResendCode,
    SetNotifications,
    Status,
    UpdateBackup,
    VerifyCode,
)


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a decision may depend on besides rows and request."""

    now: int
    rng: Rng
    rules: AccountRules
    code_secret: bytes


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the transition table: a method moving a session (None: no session yet)."""

    method: str
    session_from: SessionState | None
    session_to: SessionState | None
    outcome: str
    note: str


_P, _V, _C, _L = SessionState.PENDING, SessionState.VERIFIED, SessionState.CONSUMED, SessionState.LOCKED

TRANSITIONS: tuple[Transition, ...] = (
    Transition("request_account", None, _P, "ok", "new or unfinished email: user, session, code emailed"),
    Transition("request_account", _P, _P, "ok", "same key, same email, still pending: nothing new"),
    Transition("request_account", None, None, "email_taken", "email belongs to an activated account"),
    Transition("request_account", None, None, "rate_limited", "too many codes to this email this hour"),
    Transition("verify_code", _P, _V, "ok", "signup code matches: user verified, entropy returned"),
    Transition("verify_code", _P, _C, "ok", "login code matches: entropy, pubkey and backup returned"),
    Transition("verify_code", _P, _P, "code_invalid", "wrong code, attempts left"),
    Transition("verify_code", _P, _L, "too_many_attempts", "the last allowed wrong code"),
    Transition("verify_code", _P, _P, "code_expired", "code older than code_ttl_s"),
    Transition("verify_code", _L, _L, "too_many_attempts", "locked sessions take no more codes"),
    Transition("verify_code", _V, _V, "code_invalid", "a code works once"),
    Transition("verify_code", None, None, "no_session", "no session for this key"),
    Transition(
        "verify_code", _P, _P, "email_taken", "signup code, but another session activated the account"
    ),
    Transition("activate", _V, _C, "ok", "pubkey and backup stored, user activated"),
    Transition("activate", _C, _C, "ok", "same pubkey and backup again: no-op"),
    Transition("activate", _C, _C, "already_activated", "different pubkey or backup"),
    Transition("activate", _P, _P, "email_taken", "another session activated the account"),
    Transition("activate", _P, _P, "not_verified", "code not verified yet"),
    Transition("activate", _V, _V, "session_expired", "verified longer than activation_window_s ago"),
    Transition("activate", _V, _V, "pubkey_taken", "pubkey belongs to another account"),
    Transition("request_login", None, _P, "ok", "activated email: login session, code emailed"),
    Transition("request_login", None, None, "unknown_email", "no account for this email"),
    Transition("request_login", None, None, "not_activated", "signup never finished"),
    Transition("resend_code", _P, _P, "ok", "new code emailed, old one void"),
    Transition("resend_code", _P, _P, "rate_limited", "within resend_cooldown_s or hourly cap"),
    Transition("resend_code", None, None, "no_session", "no pending session for this key"),
    Transition("status", None, None, "ok", "email, pending change, grace, preferences"),
    Transition("status", None, None, "unknown_account", "the key is not an activated account's"),
    Transition("change_email", None, _P, "ok", "new address reserved, code to it, notice to the old one"),
    Transition(
        "change_email", None, None, "email_taken", "the address is used or reserved by another account"
    ),
    Transition("confirm_email", _P, _C, "ok", "code matches: the address switches, notice to the old one"),
    Transition("confirm_email", _P, _C, "change_expired", "the grace period ran out: the change lapses"),
    Transition("confirm_email", _P, _P, "code_invalid", "wrong code, attempts left"),
    Transition("update_backup", None, None, "ok", "new backup stored, previous kept, notice mailed"),
    Transition("set_notifications", None, None, "ok", "optional notices switched on or off"),
    Transition("request_deletion", None, _P, "ok", "deletion code mailed to the account's address"),
    Transition("delete_account", _P, None, "ok", "code matches: the account is erased, notice mailed"),
    Transition("delete_account", _P, _P, "code_invalid", "wrong code, attempts left"),
)


def decide(request: Request, pubkey: str, view: View, ctx: Context) -> Decision:
    """Decide one request from ``pubkey`` (the event's key) given the loaded rows."""
    if (refused := check_policy(request, view, private_mode=ctx.rules.private_mode)) is not None:
        return refused
    try:
        if isinstance(request, RequestAccount):
            return _request_account(request, pubkey, view, ctx)
        if isinstance(request, VerifyCode):
            return _verify_code(request, pubkey, view, ctx)
        if isinstance(request, Activate):
            return _activate(request, view, ctx)
        if isinstance(request, RequestLogin):
            return _request_login(request, pubkey, view, ctx)
        if isinstance(request, ResendCode):
            return _resend_code(pubkey, view, ctx)
        if isinstance(request, Status):
            return _status(view, ctx)
        if isinstance(request, ChangeEmail):
            return _change_email(request, pubkey, view, ctx)
        if isinstance(request, ConfirmEmail):
            return _confirm_email(request, pubkey, view, ctx)
        if isinstance(request, UpdateBackup):
            return _update_backup(request, view, ctx)
        if isinstance(request, SetNotifications):
            return _set_notifications(request, view, ctx)
        if isinstance(request, RequestDeletion):
            return _request_deletion(pubkey, view, ctx)
        if isinstance(request, DeleteAccount):
            return _delete_account(request, pubkey, view, ctx)
    except _WrongCode as wrong:
        return wrong.decision
    except RequestError as refusal:
        return Decision(Failure.of(refusal))
    raise TypeError(f"no rule for {type(request).__name__}")  # pragma: no cover


# --- signup ------------------------------------------------------------------------------------


def _request_account(request: RequestAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    private = ctx.rules.private_mode
    if user is not None and user.activated:
        if not private:
            raise EmailTaken
        owner = user
        if _is_retry(view.session, owner, Purpose.LOGIN, ctx):
            return Decision(Success())
        return _quiet_if_capped(lambda: _open_session(pubkey, owner, Purpose.LOGIN, view, ctx, ()))
    if user is None and _reserved_by_other(view.pending_user, None, ctx):
        if private:
            return Decision(Success())
        raise EmailTaken
    if user is not None and _is_retry(view.session, user, Purpose.SIGNUP, ctx):
        return Decision(Success())
    if user is None:
        user = UserRow(
            id=codes.new_token(ctx.rng, 16),
            email=request.email,
            verified=False,
            activated=False,
            entropy="",
            pubkey="",
            bkp="",
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        first: tuple[Write, ...] = (PutUser(user),)
    else:
        first = ()
    signup = user
    if private:
        return _quiet_if_capped(lambda: _open_session(pubkey, signup, Purpose.SIGNUP, view, ctx, first))
    return _open_session(pubkey, signup, Purpose.SIGNUP, view, ctx, first)


def _activate(request: Activate, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.purpose is not Purpose.SIGNUP:
        raise NoSession("This session is a login session; activation needs a signup session.")
    if user.activated:
        if session.state is not SessionState.CONSUMED:  # another session finished this signup
            raise EmailTaken
        if (user.pubkey, user.bkp) == (request.pubkey, request.backup):
            return Decision(Success())  # this session's own activation, repeated
        raise AlreadyActivated
    if session.state is SessionState.PENDING:
        raise NotVerified
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.VERIFIED:
        raise NoSession
    if session.verified_at is None or ctx.now >= session.verified_at + ctx.rules.activation_window_s:
        raise SessionExpired
    if view.pubkey_user is not None and view.pubkey_user.id != user.id:
        raise PubkeyTaken
    activated = replace(user, pubkey=request.pubkey, bkp=request.backup, activated=True, updated_at=ctx.now)
    consumed = replace(session, state=SessionState.CONSUMED, updated_at=ctx.now)
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),))
    return Decision(Success(), (PutUser(activated), PutSession(consumed)), (welcome,))


# --- login -------------------------------------------------------------------------------------


def _request_login(request: RequestLogin, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if ctx.rules.private_mode and (user is None or not user.activated):
        if user is None:
            return Decision(Success())  # nothing to send, and nothing to tell
        unfinished = user
        return _quiet_if_capped(lambda: _open_session(pubkey, unfinished, Purpose.SIGNUP, view, ctx, ()))
    if user is None:
        raise UnknownEmail
    if not user.activated:
        raise NotActivated
    if _is_retry(view.session, user, Purpose.LOGIN, ctx):
        return Decision(Success())
    if ctx.rules.private_mode:
        return _quiet_if_capped(lambda: _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ()))
    return _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ())


# --- codes -------------------------------------------------------------------------------------


def _verify_code(request: VerifyCode, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is SessionState.VERIFIED:
        raise CodeInvalid("This code has already been used.")
    if session.state is not SessionState.PENDING:
        raise NoSession
    if session.purpose not in (Purpose.SIGNUP, Purpose.LOGIN):
        raise NoSession("This key's session is not a signup or login session.")
    _check_code(session, request.code, pubkey, ctx)
    if session.purpose is Purpose.SIGNUP:
        if user.activated:  # another session finished this signup meanwhile
            raise EmailTaken
        entropy = user.entropy or codes.new_token(ctx.rng, 32)
        verified_user = replace(user, verified=True, entropy=entropy, updated_at=ctx.now)
        verified = replace(
            session, state=SessionState.VERIFIED, code_hmac="", verified_at=ctx.now, updated_at=ctx.now
        )
        return Decision(Success({"entropy": entropy}), (PutUser(verified_user), PutSession(verified)))
    if not user.activated:
        raise NotActivated
    spent = replace(
        session, state=SessionState.CONSUMED, code_hmac="", verified_at=ctx.now, updated_at=ctx.now
    )
    notices = (
        (Mail(MailKind.LOGIN_NOTICE, user.email, user.id, (("at", ctx.now),)),) if user.notify_login else ()
    )
    data = {"entropy": user.entropy, "pubkey": user.pubkey, "backup": user.bkp}
    seen = replace(user, last_login_at=ctx.now)
    return Decision(Success(data), (PutSession(spent), PutUser(seen)), notices)


def _wrong_code(session: SessionRow, ctx: Context) -> Decision:
    attempts = session.attempts + 1
    left = ctx.rules.max_code_attempts - attempts
    if left <= 0:
        locked = replace(
            session, attempts=attempts, state=SessionState.LOCKED, code_hmac="", updated_at=ctx.now
        )
        return Decision(Failure.of(TooManyAttempts()), (PutSession(locked),))
    counted = replace(session, attempts=attempts, updated_at=ctx.now)
    return Decision(Failure.of(CodeInvalid(attempts_left=left)), (PutSession(counted),))


def _resend_code(pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.PENDING:
        raise NoSession("This session has no pending code to resend.")
    wait = session.code_sent_at + ctx.rules.resend_cooldown_s - ctx.now
    if wait > 0:
        raise RateLimited("Wait before asking for another code.", retry_after_s=wait)
    _check_hourly_cap(view, ctx)
    return _renew_code(session, user, ctx)


def _renew_code(
    session: SessionRow, user: UserRow, ctx: Context, *, reset_attempts: bool = False
) -> Decision:
    """A new code for ``session`` (the old one stops working), emailed and counted."""
    code = codes.new_code(ctx.rng)
    renewed = replace(
        session,
        state=SessionState.PENDING,
        attempts=0 if reset_attempts else session.attempts,
        code_hmac=codes.code_hmac(ctx.code_secret, session.pubkey, code),
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
    )
    writes = (PutSession(renewed), RecordCodeSend(user.id, ctx.now))
    return Decision(Success(), writes, (_code_mail(session.purpose, user, code, ctx),))


# --- operator actions (the admin CLI; no cooldown or hourly cap) -------------------------------


def admin_resend_code(session: SessionRow, user: UserRow, ctx: Context) -> Decision:
    """An operator's resend for a pending session."""
    if session.state is not SessionState.PENDING:
        raise NoSession(f"session is {session.state}, not pending")
    return _renew_code(session, user, ctx)


def admin_unlock(session: SessionRow, user: UserRow, ctx: Context) -> Decision:
    """Unlock a locked session: attempts reset and a new code emailed (the old one was voided)."""
    if session.state is not SessionState.LOCKED:
        raise NoSession(f"session is {session.state}, not locked")
    return _renew_code(session, user, ctx, reset_attempts=True)


def admin_change_email(
    user: UserRow, new_email: str, holder: UserRow | None, reserver: UserRow | None, ctx: Context
) -> Decision:
    """The operator moves an account to an address checked out of band; the old one is told.

    The same reservation rules as the user's own change: ``holder`` (whose address it is) and
    ``reserver`` (whose unconfirmed change reserves it) must be this account or nobody.
    """
    if holder is not None and holder.id != user.id:
        raise EmailTaken("That address belongs to another account.")
    if _reserved_by_other(reserver, user, ctx):
        raise EmailTaken("That address is reserved by another account's pending email change.")
    if new_email == user.email:
        raise InvalidEmail("This is already the account's address.")
    moved = replace(user, email=new_email, pending_email="", grace_deadline=None, updated_at=ctx.now)
    notice = Mail(MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", new_email), ("at", ctx.now)))
    return Decision(Success(), (PutUser(moved),), (notice,) if user.activated else ())


def admin_delete(user: UserRow, ctx: Context, *, notify: bool = True, by: str = "an admin") -> Decision:
    """Erase an account (GDPR); its owner is told unless ``notify`` is off or the address was
    never verified (a stranger may have typed it: they get no mail about an account not theirs)."""
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),))
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
    undoes the first); the owner is told, as for their own update."""
    if not user.activated or not user.bkp_previous:
        raise AdminError("the account has no previous backup to restore")
    restored = replace(user, bkp=user.bkp_previous, bkp_previous=user.bkp, updated_at=ctx.now)
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),))
    return Decision(Success(), (PutUser(restored),), (notice,))


# --- account upkeep (signed by the account key) ------------------------------------------------


def _account(view: View) -> UserRow:
    user = view.account_user
    if user is None or not user.activated:
        raise UnknownAccount
    return user


def _status(view: View, ctx: Context) -> Decision:
    user = _account(view)
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
    return Decision(Success(data))


def _change_email(request: ChangeEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    if request.email == user.email:
        if not user.pending_email:
            raise InvalidEmail("This is already the account's address.")
        cancelled = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return Decision(Success(), (PutUser(cancelled),))  # changing back cancels the pending change
    if view.email_user is not None and view.email_user.id != user.id:
        raise EmailTaken
    if _reserved_by_other(view.pending_user, user, ctx):
        raise EmailTaken
    live = bool(user.pending_email) and _grace_left(user, ctx)
    deadline = (
        user.grace_deadline if live and user.grace_deadline is not None else ctx.now + ctx.rules.email_grace_s
    )
    changing = replace(user, pending_email=request.email, grace_deadline=deadline, updated_at=ctx.now)
    decision = _open_session(pubkey, changing, Purpose.EMAIL_CHANGE, view, ctx, (PutUser(changing),))
    notice = Mail(
        MailKind.EMAIL_CHANGE_NOTICE, user.email, user.id, (("new_email", request.email), ("at", ctx.now))
    )
    return replace(decision, mails=(*decision.mails, notice))


def _confirm_email(request: ConfirmEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.EMAIL_CHANGE)
    if not user.pending_email:
        raise NoSession("There is no pending email change.")
    spent = replace(session, state=SessionState.CONSUMED, code_hmac="", updated_at=ctx.now)
    if not _grace_left(user, ctx):
        lapsed = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return Decision(Failure.of(ChangeExpired()), (PutUser(lapsed), PutSession(spent)))
    _check_code(session, request.code, pubkey, ctx)
    if view.email_user is not None and view.email_user.id != user.id:  # taken meanwhile
        released = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return Decision(Failure.of(EmailTaken()), (PutUser(released), PutSession(spent)))
    switched = replace(
        user, email=user.pending_email, pending_email="", grace_deadline=None, updated_at=ctx.now
    )
    notice = Mail(
        MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", user.pending_email), ("at", ctx.now))
    )
    return Decision(Success({"email": switched.email}), (PutUser(switched), PutSession(spent)), (notice,))


def _update_backup(request: UpdateBackup, view: View, ctx: Context) -> Decision:
    user = _account(view)
    if request.backup == user.bkp:
        return Decision(Success())
    updated = replace(user, bkp=request.backup, bkp_previous=user.bkp, updated_at=ctx.now)
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),))
    return Decision(Success(), (PutUser(updated),), (notice,))


def _set_notifications(request: SetNotifications, view: View, ctx: Context) -> Decision:
    user = _account(view)
    updated = replace(user, notify_login=request.login_notice, updated_at=ctx.now)
    return Decision(Success({"notifications": {"login_notice": request.login_notice}}), (PutUser(updated),))


def _request_deletion(pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    return _open_session(pubkey, user, Purpose.DELETION, view, ctx, ())


def _delete_account(request: DeleteAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.DELETION)
    _check_code(session, request.code, pubkey, ctx)
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),))
    return Decision(Success(), (DeleteUser(user.id),), (notice,))


# --- shared steps ------------------------------------------------------------------------------


def _purpose_session(view: View, user: UserRow, purpose: Purpose) -> SessionRow:
    """The account key's pending session for ``purpose``, or ``no_session``."""
    session = view.session
    if session is None or session.user_id != user.id or session.purpose is not purpose:
        raise NoSession
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.PENDING:
        raise NoSession
    return session


class _WrongCode(RequestError):
    """Internal: a wrong code, carrying the decision that counts it."""

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision


def _check_code(session: SessionRow, code: str, pubkey: str, ctx: Context) -> None:
    """Expiry, then the constant-time comparison; a wrong code is counted (and may lock)."""
    if ctx.now >= session.code_expires_at:
        raise CodeExpired
    if not codes.code_matches(ctx.code_secret, pubkey, code, session.code_hmac):
        raise _WrongCode(_wrong_code(session, ctx))


def _grace_left(user: UserRow, ctx: Context) -> bool:
    return user.grace_deadline is not None and ctx.now < user.grace_deadline


def _reserved_by_other(pending_user: UserRow | None, me: UserRow | None, ctx: Context) -> bool:
    """The address is another user's pending change that has not lapsed."""
    return (
        pending_user is not None
        and (me is None or pending_user.id != me.id)
        and _grace_left(pending_user, ctx)
    )


def _quiet_if_capped(open_session: Callable[[], Decision]) -> Decision:
    """Private mode: a capped address answers like any other (nothing is sent)."""
    try:
        return open_session()
    except RateLimited:
        return Decision(Success())


def _own_session(view: View) -> tuple[SessionRow, UserRow]:
    """The event key's session and its user, or ``no_session``."""
    if view.session is None or view.session_user is None:
        raise NoSession
    return view.session, view.session_user


def _is_retry(session: SessionRow | None, user: UserRow, purpose: Purpose, ctx: Context) -> bool:
    """True when this key already has a live pending session for the same user and purpose."""
    return (
        session is not None
        and session.user_id == user.id
        and session.purpose is purpose
        and session.state is SessionState.PENDING
        and ctx.now < session.code_expires_at
    )


def _check_hourly_cap(view: View, ctx: Context) -> None:
    recent = sorted(t for t in view.code_sends if t > ctx.now - ctx.rules.code_window_s)
    cap = ctx.rules.max_codes_per_email_per_hour
    if len(recent) >= cap:
        retry_after = recent[len(recent) - cap] + ctx.rules.code_window_s - ctx.now
        message = "Too many codes sent to this address; try later."
        raise RateLimited(message, retry_after_s=max(1, retry_after))


def _open_session(
    pubkey: str, user: UserRow, purpose: Purpose, view: View, ctx: Context, first: tuple[Write, ...]
) -> Decision:
    """A new pending session for ``pubkey`` (replacing any older one of that key) and its code."""
    _check_hourly_cap(view, ctx)
    code = codes.new_code(ctx.rng)
    session = SessionRow(
        pubkey=pubkey,
        user_id=user.id,
        purpose=purpose,
        state=SessionState.PENDING,
        code_hmac=codes.code_hmac(ctx.code_secret, pubkey, code),
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    writes = (*first, PutSession(session), RecordCodeSend(user.id, ctx.now))
    return Decision(Success(), writes, (_code_mail(purpose, user, code, ctx),))


_CODE_MAILS = {
    Purpose.SIGNUP: MailKind.SIGNUP_CODE,
    Purpose.LOGIN: MailKind.LOGIN_CODE,
    Purpose.EMAIL_CHANGE: MailKind.EMAIL_CHANGE_CODE,
    Purpose.DELETION: MailKind.DELETION_CODE,
}


def _code_mail(purpose: Purpose, user: UserRow, code: str, ctx: Context) -> Mail:
    """The code email; an email change's code goes to the NEW address."""
    to = user.pending_email if purpose is Purpose.EMAIL_CHANGE else user.email
    params = (("code", code), ("expires_at", ctx.now + ctx.rules.code_ttl_s))
    return Mail(_CODE_MAILS[purpose], to, user.id, params)

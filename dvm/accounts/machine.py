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
from typing import Any

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
    Step,
    Success,
    Transition,
    View,
    Write,
)
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import (
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
    UndeclaredTransition,
    UnknownAccount,
    UnknownEmail,
)
from dvm.nostr.keys import Rng
from dvm.protocol.methods import (
    Activate,
    ChangeEmail,
    ConfirmEmail,
    DeleteAccount,
    Method,
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


_P, _V, _C, _L = SessionState.PENDING, SessionState.VERIFIED, SessionState.CONSUMED, SessionState.LOCKED


def row(session_from: SessionState | None, session_to: SessionState | None, outcome: str, note: str) -> Row:
    """One row of a method's table (the method is added by :func:`rule`)."""
    return Row(session_from, session_to, outcome, note)


@dataclass(frozen=True, slots=True)
class Row:
    session_from: SessionState | None
    session_to: SessionState | None
    outcome: str
    note: str


Handler = Callable[[Any, str, View, Context], Decision]


@dataclass(frozen=True, slots=True)
class Rule:
    """A method, the handler that decides it, and every transition that handler may take."""

    method: Method
    handler: Handler
    rows: tuple[Transition, ...]

    def find(self, step: Step, outcome: str) -> Transition | None:
        for candidate in self.rows:
            if (candidate.session_from, candidate.session_to, candidate.outcome) == (*step, outcome):
                return candidate
        return None

    def refusal(self, outcome: str, view: View) -> Transition | None:
        """The row of a raised refusal: it changes no session, so ``from == to``; where several
        rows share the outcome, the one whose state is the key's session's state."""
        rows = [r for r in self.rows if r.outcome == outcome and r.session_from == r.session_to]
        if len(rows) > 1:
            state = view.session.state if view.session is not None else None
            rows = [r for r in rows if r.session_from == state]
        return rows[0] if len(rows) == 1 else None


RULES: dict[Method, Rule] = {}


def rule(method: Method, *rows: Row) -> Callable[[Handler], Handler]:
    """Declare ``method``'s handler with its rows: :func:`decide` dispatches through ``RULES``
    and refuses (``internal_error``) any outcome the rows do not name."""

    def register(handler: Handler) -> Handler:
        if method in RULES:
            raise ValueError(f"{method} has two rules")
        transitions = tuple(Transition(method, r.session_from, r.session_to, r.outcome, r.note) for r in rows)
        RULES[method] = Rule(method, handler, transitions)
        return handler

    return register


def decide(request: Request, pubkey: str, view: View, ctx: Context) -> Decision:
    """Decide one request from ``pubkey`` (the event's key) given the loaded rows.

    The decision carries the row of the table it took. A handler that returns, or raises, an
    outcome its rows do not declare is a bug: :class:`~dvm.errors.UndeclaredTransition`.
    """
    entry = RULES.get(request.method)
    if entry is None:
        raise UndeclaredTransition(f"no rule for {request.method}")
    try:
        decision = entry.handler(request, pubkey, view, ctx)
    except _WrongCode as wrong:
        decision = wrong.decision
    except RequestError as refusal:
        failure = Failure.of(refusal)
        taken = entry.refusal(failure.code, view)
        if taken is None:
            raise UndeclaredTransition(f"{request.method} refused {failure.code}: not a row") from refusal
        return Decision(failure, transition=taken)
    if decision.step is None:
        raise UndeclaredTransition(f"{request.method} -> {decision.outcome} names no step")
    taken = entry.find(decision.step, decision.outcome)
    if taken is None:
        raise UndeclaredTransition(f"{request.method} {decision.step} -> {decision.outcome}: not a row")
    for write in decision.writes:
        if isinstance(write, PutSession) and write.row.state is not taken.session_to:
            raise UndeclaredTransition(
                f"{request.method} wrote a {write.row.state} session, row says {taken}"
            )
    return replace(decision, transition=taken)


def _then(step: Step, decision: Decision) -> Decision:
    """``decision``, taking the session from ``step[0]`` to ``step[1]``."""
    return replace(decision, step=step)


# --- signup ------------------------------------------------------------------------------------


@rule(
    Method.REQUEST_ACCOUNT,
    row(None, _P, "ok", "new or unfinished email: user, session, code emailed"),
    row(_P, _P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "ok", "private mode: reserved or capped address, nothing sent"),
    row(None, None, "email_taken", "email belongs to an activated account"),
    row(None, None, "rate_limited", "too many codes to this email this hour"),
)
def _request_account(request: RequestAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    private = ctx.rules.private_mode
    if user is not None and user.activated:
        if not private:
            raise EmailTaken
        owner = user
        if _is_retry(view.session, owner, Purpose.LOGIN, ctx):
            return _then((_P, _P), Decision(Success()))
        return _quiet_if_capped(lambda: _open_session(pubkey, owner, Purpose.LOGIN, view, ctx, ()))
    if user is None and _reserved_by_other(view.pending_user, None, ctx):
        if private:
            return _then((None, None), Decision(Success()))
        raise EmailTaken
    if user is not None and _is_retry(view.session, user, Purpose.SIGNUP, ctx):
        return _then((_P, _P), Decision(Success()))
    if user is None:
        user = UserRow(
            id=codes.new_token(ctx.rng, 16),
            email=request.email,
            verified=False,
            activated=False,
            entropy="",
            pubkey="",
            backup="",
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


@rule(
    Method.ACTIVATE,
    row(_V, _C, "ok", "pubkey and backup stored, user activated"),
    row(_C, _C, "ok", "same pubkey and backup again: no-op"),
    row(_C, _C, "already_activated", "different pubkey or backup"),
    row(_P, _P, "email_taken", "another session activated the account"),
    row(_V, _V, "email_taken", "another session activated the account after this one verified"),
    row(_P, _P, "not_verified", "code not verified yet"),
    row(_L, _L, "too_many_attempts", "the session was locked by wrong codes"),
    row(_V, _V, "session_expired", "verified longer than activation_window_s ago"),
    row(_V, _V, "pubkey_taken", "pubkey belongs to another account"),
    row(None, None, "no_session", "no signup session for this key"),
)
def _activate(request: Activate, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.purpose is not Purpose.SIGNUP:
        raise NoSession("This session is a login session; activation needs a signup session.")
    if user.activated:
        if session.state is not SessionState.CONSUMED:  # another session finished this signup
            raise EmailTaken
        if (user.pubkey, user.backup) == (request.pubkey, request.backup):
            return _then((_C, _C), Decision(Success()))  # this session's own activation, repeated
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
    activated = replace(
        user, pubkey=request.pubkey, backup=request.backup, activated=True, updated_at=ctx.now
    )
    consumed = replace(session, state=SessionState.CONSUMED, updated_at=ctx.now)
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),))
    return _then((_V, _C), Decision(Success(), (PutUser(activated), PutSession(consumed)), (welcome,)))


# --- login -------------------------------------------------------------------------------------


@rule(
    Method.REQUEST_LOGIN,
    row(None, _P, "ok", "activated email: login session, code emailed"),
    row(_P, _P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "ok", "private mode: unknown or capped address, nothing sent"),
    row(None, None, "unknown_email", "no account for this email"),
    row(None, None, "not_activated", "signup never finished"),
    row(None, None, "rate_limited", "too many codes to this email this hour"),
)
def _request_login(request: RequestLogin, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if ctx.rules.private_mode and (user is None or not user.activated):
        if user is None:
            return _then((None, None), Decision(Success()))  # nothing to send, and nothing to tell
        unfinished = user
        return _quiet_if_capped(lambda: _open_session(pubkey, unfinished, Purpose.SIGNUP, view, ctx, ()))
    if user is None:
        raise UnknownEmail
    if not user.activated:
        raise NotActivated
    if _is_retry(view.session, user, Purpose.LOGIN, ctx):
        return _then((_P, _P), Decision(Success()))
    if ctx.rules.private_mode:
        return _quiet_if_capped(lambda: _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ()))
    return _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ())


# --- codes -------------------------------------------------------------------------------------


@rule(
    Method.VERIFY_CODE,
    row(_P, _V, "ok", "signup code matches: user verified, entropy returned"),
    row(_P, _C, "ok", "login code matches: entropy, pubkey and backup returned"),
    row(_P, _P, "code_invalid", "wrong code, attempts left"),
    row(_P, _L, "too_many_attempts", "the last allowed wrong code"),
    row(_P, _P, "code_expired", "code older than code_ttl_s"),
    row(_L, _L, "too_many_attempts", "locked sessions take no more codes"),
    row(_V, _V, "code_invalid", "a code works once"),
    row(None, None, "no_session", "no session for this key"),
    row(_P, _P, "email_taken", "signup code, but another session activated the account"),
    row(_P, _P, "not_activated", "login code, but the account was never activated"),
)
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
        writes = (PutUser(verified_user), PutSession(verified))
        return _then((_P, _V), Decision(Success({"entropy": entropy}), writes))
    if not user.activated:
        raise NotActivated
    spent = replace(
        session, state=SessionState.CONSUMED, code_hmac="", verified_at=ctx.now, updated_at=ctx.now
    )
    notices = (
        (Mail(MailKind.LOGIN_NOTICE, user.email, user.id, (("at", ctx.now),)),) if user.notify_login else ()
    )
    data = {"entropy": user.entropy, "pubkey": user.pubkey, "backup": user.backup}
    return _then((_P, _C), Decision(Success(data), (PutSession(spent),), notices))


def _wrong_code(session: SessionRow, ctx: Context) -> Decision:
    attempts = session.attempts + 1
    left = ctx.rules.max_code_attempts - attempts
    if left <= 0:
        locked = replace(
            session, attempts=attempts, state=SessionState.LOCKED, code_hmac="", updated_at=ctx.now
        )
        return _then((_P, _L), Decision(Failure.of(TooManyAttempts()), (PutSession(locked),)))
    counted = replace(session, attempts=attempts, updated_at=ctx.now)
    return _then((_P, _P), Decision(Failure.of(CodeInvalid(attempts_left=left)), (PutSession(counted),)))


@rule(
    Method.RESEND_CODE,
    row(_P, _P, "ok", "new code emailed, old one void"),
    row(_P, _P, "rate_limited", "within resend_cooldown_s or hourly cap"),
    row(_L, _L, "too_many_attempts", "a locked session gets no new code"),
    row(None, None, "no_session", "no pending session for this key"),
)
def _resend_code(request: ResendCode, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.PENDING:
        raise NoSession("This session has no pending code to resend.")
    wait = session.code_sent_at + ctx.rules.resend_cooldown_s - ctx.now
    if wait > 0:
        raise RateLimited("Wait before asking for another code.", retry_after_s=wait)
    _check_hourly_cap(view, ctx)
    return _then((_P, _P), _renew_code(session, user, ctx))


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


def admin_change_email(user: UserRow, new_email: str, holder: UserRow | None, ctx: Context) -> Decision:
    """The operator moves an account to an address checked out of band; the old one is told."""
    if holder is not None and holder.id != user.id:
        raise EmailTaken("That address belongs to another account.")
    if new_email == user.email:
        raise InvalidEmail("This is already the account's address.")
    moved = replace(user, email=new_email, pending_email="", grace_deadline=None, updated_at=ctx.now)
    notice = Mail(MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", new_email), ("at", ctx.now)))
    return Decision(Success(), (PutUser(moved),), (notice,) if user.activated else ())


def admin_delete(user: UserRow, ctx: Context, *, notify: bool = True) -> Decision:
    """Erase an account (GDPR); its owner is told unless ``notify`` is off."""
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),))
    return Decision(Success(), (DeleteUser(user.id),), (notice,) if notify else ())


# --- account upkeep (signed by the account key) ------------------------------------------------


def _account(view: View) -> UserRow:
    user = view.account_user
    if user is None or not user.activated:
        raise UnknownAccount
    return user


@rule(
    Method.STATUS,
    row(None, None, "ok", "email, pending change, grace, preferences"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _status(request: Status, pubkey: str, view: View, ctx: Context) -> Decision:
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
    return _then((None, None), Decision(Success(data)))


@rule(
    Method.CHANGE_EMAIL,
    row(None, _P, "ok", "new address reserved, code to it, notice to the old one"),
    row(None, None, "ok", "back to the current address: the pending change is cancelled"),
    row(None, None, "email_taken", "the address is used or reserved by another account"),
    row(None, None, "invalid_email", "already the account's address, nothing pending"),
    row(None, None, "rate_limited", "too many codes to this email this hour"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _change_email(request: ChangeEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    if request.email == user.email:
        if not user.pending_email:
            raise InvalidEmail("This is already the account's address.")
        cancelled = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return _then((None, None), Decision(Success(), (PutUser(cancelled),)))
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


@rule(
    Method.CONFIRM_EMAIL,
    row(_P, _C, "ok", "code matches: the address switches, notice to the old one"),
    row(_P, _C, "change_expired", "the grace period ran out: the change lapses"),
    row(_P, _C, "email_taken", "the address was taken meanwhile: the change is released"),
    row(_P, _P, "code_invalid", "wrong code, attempts left"),
    row(_P, _L, "too_many_attempts", "the last allowed wrong code"),
    row(_P, _P, "code_expired", "code older than code_ttl_s"),
    row(_L, _L, "too_many_attempts", "locked sessions take no more codes"),
    row(None, None, "no_session", "no pending email change for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _confirm_email(request: ConfirmEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.EMAIL_CHANGE)
    if not user.pending_email:
        raise NoSession("There is no pending email change.")
    spent = replace(session, state=SessionState.CONSUMED, code_hmac="", updated_at=ctx.now)
    if not _grace_left(user, ctx):
        lapsed = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return _then((_P, _C), Decision(Failure.of(ChangeExpired()), (PutUser(lapsed), PutSession(spent))))
    _check_code(session, request.code, pubkey, ctx)
    if view.email_user is not None and view.email_user.id != user.id:  # taken meanwhile
        released = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return _then((_P, _C), Decision(Failure.of(EmailTaken()), (PutUser(released), PutSession(spent))))
    switched = replace(
        user, email=user.pending_email, pending_email="", grace_deadline=None, updated_at=ctx.now
    )
    notice = Mail(
        MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", user.pending_email), ("at", ctx.now))
    )
    writes = (PutUser(switched), PutSession(spent))
    return _then((_P, _C), Decision(Success({"email": switched.email}), writes, (notice,)))


@rule(
    Method.UPDATE_BACKUP,
    row(None, None, "ok", "new backup stored, previous kept, notice mailed"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _update_backup(request: UpdateBackup, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    if request.backup == user.backup:
        return _then((None, None), Decision(Success()))
    updated = replace(user, backup=request.backup, backup_previous=user.backup, updated_at=ctx.now)
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),))
    return _then((None, None), Decision(Success(), (PutUser(updated),), (notice,)))


@rule(
    Method.SET_NOTIFICATIONS,
    row(None, None, "ok", "optional notices switched on or off"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _set_notifications(request: SetNotifications, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    updated = replace(user, notify_login=request.login_notice, updated_at=ctx.now)
    reply = Success({"notifications": {"login_notice": request.login_notice}})
    return _then((None, None), Decision(reply, (PutUser(updated),)))


@rule(
    Method.REQUEST_DELETION,
    row(None, _P, "ok", "deletion code mailed to the account's address"),
    row(None, None, "rate_limited", "too many codes to this email this hour"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _request_deletion(request: RequestDeletion, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    return _open_session(pubkey, user, Purpose.DELETION, view, ctx, ())


@rule(
    Method.DELETE_ACCOUNT,
    row(_P, None, "ok", "code matches: the account is erased, notice mailed"),
    row(_P, _P, "code_invalid", "wrong code, attempts left"),
    row(_P, _L, "too_many_attempts", "the last allowed wrong code"),
    row(_P, _P, "code_expired", "code older than code_ttl_s"),
    row(_L, _L, "too_many_attempts", "locked sessions take no more codes"),
    row(None, None, "no_session", "no pending deletion for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _delete_account(request: DeleteAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.DELETION)
    _check_code(session, request.code, pubkey, ctx)
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),))
    return _then((_P, None), Decision(Success(), (DeleteUser(user.id),), (notice,)))


TRANSITIONS: tuple[Transition, ...] = tuple(row for entry in RULES.values() for row in entry.rows)
"""Every row of every method, in the order of the rules: docs/protocol.md shows this table."""


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
        return _then((None, None), Decision(Success()))


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
    return _then((None, _P), Decision(Success(), writes, (_code_mail(purpose, user, code, ctx),)))


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

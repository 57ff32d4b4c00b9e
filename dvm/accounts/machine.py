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

Everything here is pure: ``decide`` gets the rows, the request, ``now`` and an ``rng`` and returns
a :class:`~dvm.accounts.decision.Decision`. Refusals that change nothing are raised as
``RequestError`` inside and turned into a reply at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dvm.accounts import codes
from dvm.accounts.decision import (
    Decision,
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
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import (
    AlreadyActivated,
    CodeExpired,
    CodeInvalid,
    EmailTaken,
    NoSession,
    NotActivated,
    NotVerified,
    PubkeyTaken,
    RateLimited,
    RequestError,
    SessionExpired,
    TooManyAttempts,
    UnknownEmail,
)
from dvm.nostr.keys import Rng
from dvm.protocol.methods import Activate, Request, RequestAccount, RequestLogin, ResendCode, VerifyCode


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
)


def decide(request: Request, pubkey: str, view: View, ctx: Context) -> Decision:
    """Decide one request from ``pubkey`` (the event's key) given the loaded rows."""
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
    except RequestError as refusal:
        return Decision(Failure.of(refusal))
    raise TypeError(f"no rule for {type(request).__name__}")  # pragma: no cover


# --- signup ------------------------------------------------------------------------------------


def _request_account(request: RequestAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if user is not None and user.activated:
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
    return _open_session(pubkey, user, Purpose.SIGNUP, view, ctx, first)


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
    if user is None:
        raise UnknownEmail
    if not user.activated:
        raise NotActivated
    if _is_retry(view.session, user, Purpose.LOGIN, ctx):
        return Decision(Success())
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
    if ctx.now >= session.code_expires_at:
        raise CodeExpired
    if not codes.code_matches(ctx.code_secret, pubkey, request.code, session.code_hmac):
        return _wrong_code(session, ctx)
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
    notice = Mail(MailKind.LOGIN_NOTICE, user.email, user.id, (("at", ctx.now),))
    data = {"entropy": user.entropy, "pubkey": user.pubkey, "backup": user.bkp}
    return Decision(Success(data), (PutSession(spent),), (notice,))


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
    code = codes.new_code(ctx.rng)
    renewed = replace(
        session,
        code_hmac=codes.code_hmac(ctx.code_secret, pubkey, code),
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
    )
    writes = (PutSession(renewed), RecordCodeSend(user.id, ctx.now))
    return Decision(Success(), writes, (_code_mail(session.purpose, user, code, ctx),))


# --- shared steps ------------------------------------------------------------------------------


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


def _code_mail(purpose: Purpose, user: UserRow, code: str, ctx: Context) -> Mail:
    kind = MailKind.SIGNUP_CODE if purpose is Purpose.SIGNUP else MailKind.LOGIN_CODE
    params = (("code", code), ("expires_at", ctx.now + ctx.rules.code_ttl_s))
    return Mail(kind, user.email, user.id, params)

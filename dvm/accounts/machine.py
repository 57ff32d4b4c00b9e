"""The account state machine: SIGit signup, verification, activation and login.

Rules, in prose (``TRANSITIONS`` below is the same, as data; docs/protocol.md is checked against it):

* A **user** goes unverified -> verified (a signup code matched; ``entropy`` is drawn once, then
  kept) -> activated (pubkey and backup stored). Activated implies verified. One user per email.
* A **session** belongs to one ephemeral key and one user, for one purpose (signup or login). It
  starts ``pending`` with a fresh code emailed. The right code before expiry moves a signup session
  to ``verified`` (reply: entropy) and a login session to ``consumed`` (reply: entropy, pubkey and
  backup). Each wrong code counts; the ``max_code_attempts``-th wrong code locks the session. A
  verified signup session may activate within ``activation_window_s``, then it is ``consumed``.
* Codes are single use, expire after ``code_ttl_s``, are stored only as an HMAC. At most
  ``max_codes_per_email_per_hour`` go to one mailbox (``+tag``, case, width and zero-width
  characters folded, whatever the method), ``max_codes_per_domain_per_hour`` to one domain and
  ``max_codes_per_hour`` in all. ``resend_code`` replaces the code of a pending session after
  ``resend_cooldown_s``; the old code stops working. Wrong codes count per day, for the mailbox of
  a signup or login code and for the account of an email-change or deletion code: past
  ``code_failures_free_per_day`` each session takes one try only, and codes to that mailbox go out
  at least ``code_failure_backoff_s`` apart, doubling up to an hour (``rate_limited``); the right
  code is never refused, and the account's owner is told once.
* Requesting an account for an email that is activated answers ``email_taken`` (go to login), and
  so does any other step of a signup session whose account another session has activated; for an
  email whose signup was never finished it starts a new signup session (the owner proves the
  address again). A repeated request from the same key for the same pending session is a no-op
  success, so a client may retry without triggering a second email.

* **Account upkeep** is signed by the account's own key, by a seal of it (the request signed by
  the account key inside the encrypted content of an ephemeral key's event), or comes from a key
  whose session proved the address (a login or signup code, or activation) less than
  ``account_session_s`` ago; ``unknown_account`` otherwise. An email
  change mails a code to the new address and a notice to the old one, and reserves nothing: the
  address's owner may still sign up with it, and whoever proves it first wins (a verified signup
  or another confirmed change cancels the pending changes to it, and tells their requesters). An
  address held by a signup never verified does not block a change; confirming the change erases
  that unfinished signup. Login keeps using the confirmed address until ``confirm_email``
  switches it (a notice goes to the old address). The change must be confirmed within
  ``email_grace_s``: the deadline is set by the first change of a pending period and NOT moved by
  further changes before confirmation; past it the change lapses (``change_expired``). ``status`` reports the
  deadline as signed seconds (positive: time left; negative: overdue). ``update_backup`` keeps the
  previous backup; deleting an account needs a fresh code (``request_deletion``) and erases it.
* In **private mode** a stranger gets the same answers whatever an address is (an account, an
  unfinished signup, a pending change, nothing): ``request_account`` and ``request_login`` answer
  ``ok`` and leave a pending session for the key either way. An existing account's owner is
  mailed a login code (so the browser continues as a login), an unfinished signup gets a signup
  code; an unknown address, a capped one, or (for ``change_email``) one used by another account
  gets a **decoy**: a session whose code was never sent, so every later step answers as for a
  wrong code. ``activate`` on any pending session answers ``not_verified``.

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
    RecordCodeFailure,
    RecordCodeSend,
    Step,
    Success,
    Transition,
    View,
    Write,
)
from dvm.accounts.email_address import canonical_mailbox
from dvm.accounts.policy import check_policy
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import (
    AccountSuspended,
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
    Register,
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
BLOCKABLE = frozenset(
    {Method.REQUEST_ACCOUNT, Method.REGISTER, Method.REQUEST_LOGIN, Method.CHANGE_EMAIL, Method.CONFIRM_EMAIL}
)
"""Methods about an address an admin may block (``dvm.accounts.policy``)."""


CODE_ROWS = (
    row(_P, _P, "code_invalid", "wrong code, attempts left"),
    row(_P, _L, "too_many_attempts", "the last allowed wrong code (past the day's free ones: the first)"),
    row(_P, _P, "code_expired", "code older than code_ttl_s"),
    row(_L, _L, "too_many_attempts", "locked sessions take no more codes"),
)
"""The rows every method that checks a code shares (:func:`_check_code`)."""


def rule(method: Method, *rows: Row) -> Callable[[Handler], Handler]:
    """Declare ``method``'s handler with its rows: :func:`decide` dispatches through ``RULES``
    and refuses (``internal_error``) any outcome the rows do not name."""

    def register(handler: Handler) -> Handler:
        if method in RULES:
            raise ValueError(f"{method} has two rules")
        policy: tuple[Row, ...] = (
            row(None, None, "account_suspended", "an admin suspended the account (checked first)"),
        )
        if method in BLOCKABLE:
            policy += (
                row(None, None, "email_blocked", "the address or its domain is blocked (checked first)"),
            )
        transitions = tuple(
            Transition(method, r.session_from, r.session_to, r.outcome, r.note) for r in (*rows, *policy)
        )
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
    refused = check_policy(request, view)
    if refused is not None:
        if (
            ctx.rules.private_mode
            and isinstance(refused, AccountSuspended)
            and isinstance(request, RequestAccount | Register | RequestLogin)
        ):
            # A suspended account's address answers as an unknown one would: a decoy.
            decoy = _decoy(pubkey, request.email, Purpose.LOGIN, ctx)
            return replace(decoy, step=(None, _P), transition=entry.find((None, _P), "ok"))
        taken = entry.find((None, None), refused.code)
        if taken is None:
            raise UndeclaredTransition(f"{request.method} refused {refused.code} by policy: not a row")
        return Decision(Failure.of(refused), transition=taken)
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
    return replace(decision, writes=_keep_authorisation(decision.writes, view, ctx), transition=taken)


def _keep_authorisation(writes: tuple[Write, ...], view: View, ctx: Context) -> tuple[Write, ...]:
    """A key acting for its account by session (``auth_until``) keeps that right in the session
    it opens for the same account (an email change, a deletion): it is still the same proof."""
    old = view.session
    if old is None or not old.authorises(ctx.now):
        return writes
    return tuple(
        PutSession(replace(w.row, auth_until=old.auth_until))
        if isinstance(w, PutSession)
        and w.row.pubkey == old.pubkey
        and w.row.user_id == old.user_id
        and w.row.auth_until is None
        else w
        for w in writes
    )


def _then(step: Step, decision: Decision) -> Decision:
    """``decision``, taking the session from ``step[0]`` to ``step[1]``."""
    return replace(decision, step=step)


# --- signup ------------------------------------------------------------------------------------


@rule(
    Method.REQUEST_ACCOUNT,
    row(None, _P, "ok", "new or unfinished email: user, session, code emailed (private mode: see there)"),
    row(_P, _P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "email_taken", "email belongs to an activated account"),
    row(None, None, "rate_limited", "too many codes to this mailbox, its domain or in all this hour"),
)
def _request_account(request: RequestAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    private = ctx.rules.private_mode
    if user is not None and user.activated:
        if not private:
            raise EmailTaken
        if _is_retry(view.session, user, Purpose.LOGIN, ctx):
            return _then((_P, _P), Decision(Success()))
        return _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ())
    if user is not None and _is_retry(view.session, user, Purpose.SIGNUP, ctx):
        return _then((_P, _P), Decision(Success()))
    first: tuple[Write, ...] = ()
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
        first = (PutUser(user),)
    return _open_session(pubkey, user, Purpose.SIGNUP, view, ctx, first)


@rule(
    Method.ACTIVATE,
    row(_V, _C, "ok", "pubkey and backup stored, user activated"),
    row(_C, _C, "ok", "same pubkey and backup again: no-op"),
    row(_C, _C, "already_activated", "different pubkey or backup"),
    row(_P, _P, "email_taken", "another session activated the account"),
    row(_V, _V, "email_taken", "another session activated the account after this one verified"),
    row(_P, _P, "not_verified", "code not verified yet (private mode: any pending session)"),
    row(_L, _L, "too_many_attempts", "the session was locked by wrong codes"),
    row(_V, _V, "session_expired", "verified longer than activation_window_s ago"),
    row(_V, _V, "pubkey_taken", "pubkey belongs to another account"),
    row(None, None, "no_session", "no signup session for this key"),
)
def _activate(request: Activate, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = _own_session(view)
    if session.state is SessionState.PENDING and (ctx.rules.private_mode or session.decoy):
        raise NotVerified  # a login session or a decoy answers as a signup would
    if session.purpose is not Purpose.SIGNUP or user is None:
        raise NoSession("Activation needs a request_account signup session; this session is not one.")
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
        user,
        pubkey=request.pubkey,
        backup=request.backup,
        activated=True,
        last_seen=ctx.now,
        updated_at=ctx.now,
    )
    consumed = replace(
        session,
        state=SessionState.CONSUMED,
        updated_at=ctx.now,
        auth_until=ctx.now + ctx.rules.account_session_s,
    )
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),))
    return _then((_V, _C), Decision(Success(), (PutUser(activated), PutSession(consumed)), (welcome,)))


@rule(
    Method.REGISTER,
    row(
        None,
        _P,
        "ok",
        "new or unfinished email (that entry is erased): user with pubkey and backup, code emailed",
    ),
    row(_P, _P, "ok", "same key, email, pubkey and backup, still pending: nothing new"),
    row(None, None, "email_taken", "email belongs to an activated account (last_seen set): go to login"),
    row(None, None, "pubkey_taken", "pubkey belongs to another activated account"),
    row(None, None, "rate_limited", "too many codes to this mailbox, its domain or in all this hour"),
)
def _register(request: Register, pubkey: str, view: View, ctx: Context) -> Decision:
    """SIGit's one-event signup: the entry is stored with its key and backup, and the emailed
    code activates it (``verify_code``). An entry never finished is erased and started again."""
    user = view.email_user
    if user is not None and user.activated:
        if not ctx.rules.private_mode:
            raise EmailTaken
        if _is_retry(view.session, user, Purpose.LOGIN, ctx):
            return _then((_P, _P), Decision(Success()))
        return _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ())
    if (
        user is not None
        and _is_retry(view.session, user, Purpose.REGISTER, ctx)
        and (user.pubkey, user.backup) == (request.pubkey, request.backup)
    ):
        return _then((_P, _P), Decision(Success()))
    holder = view.pubkey_user
    if holder is not None and holder.activated:
        raise PubkeyTaken
    unfinished = {u.id for u in (user, holder) if u is not None}
    new = UserRow(
        id=codes.new_token(ctx.rng, 16),
        email=request.email,
        verified=False,
        activated=False,
        entropy="",
        pubkey=request.pubkey,
        backup=request.backup,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    erased: tuple[Write, ...] = tuple(DeleteUser(i, ctx.now, "a new signup") for i in sorted(unfinished))
    first = (*erased, PutUser(new))
    return _open_session(pubkey, new, Purpose.REGISTER, view, ctx, first)


# --- login -------------------------------------------------------------------------------------


@rule(
    Method.REQUEST_LOGIN,
    row(None, _P, "ok", "activated email: login session, code emailed (private mode: see there)"),
    row(_P, _P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "unknown_email", "no account for this email"),
    row(None, None, "not_activated", "signup never finished"),
    row(None, None, "rate_limited", "too many codes to this mailbox, its domain or in all this hour"),
)
def _request_login(request: RequestLogin, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if ctx.rules.private_mode and (user is None or not user.activated):
        if user is None:
            return _then((None, _P), _decoy(pubkey, request.email, Purpose.LOGIN, ctx))
        if _is_retry(view.session, user, Purpose.SIGNUP, ctx):
            return _then((_P, _P), Decision(Success()))
        return _open_session(pubkey, user, Purpose.SIGNUP, view, ctx, ())
    if user is None:
        raise UnknownEmail
    if not user.activated:
        raise NotActivated
    if _is_retry(view.session, user, Purpose.LOGIN, ctx):
        return _then((_P, _P), Decision(Success()))
    return _open_session(pubkey, user, Purpose.LOGIN, view, ctx, ())


# --- codes -------------------------------------------------------------------------------------


@rule(
    Method.VERIFY_CODE,
    row(
        _P, _V, "ok", "signup code matches: user verified, entropy returned; pending changes to it cancelled"
    ),
    row(
        _P,
        _C,
        "ok",
        "login code: pubkey, backup (seed accounts: entropy) returned; register code: account activated",
    ),
    *CODE_ROWS,
    row(_V, _V, "code_invalid", "a code works once"),
    row(None, None, "no_session", "no session for this key"),
    row(_P, _P, "email_taken", "signup or register code, but another session activated the account"),
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
    if session.purpose not in (Purpose.SIGNUP, Purpose.LOGIN, Purpose.REGISTER):
        raise NoSession("This key's session is not a signup or login session.")
    _check_code(session, user, request.code, pubkey, view, ctx)
    assert user is not None  # a decoy's code never matches
    if session.purpose is Purpose.REGISTER:
        return _finish_register(session, user, view, ctx)
    if session.purpose is Purpose.SIGNUP:
        if user.activated:  # another session finished this signup meanwhile
            raise EmailTaken
        entropy = user.entropy or codes.new_token(ctx.rng, 32)
        verified_user = replace(user, verified=True, entropy=entropy, updated_at=ctx.now)
        verified = replace(
            session, state=SessionState.VERIFIED, code_hmac="", verified_at=ctx.now, updated_at=ctx.now
        )
        cancelled, told = _cancel_pending_changes(view, user, ctx)
        writes = (PutUser(verified_user), PutSession(verified), *cancelled)
        return _then((_P, _V), Decision(Success({"entropy": entropy}), writes, told))
    if not user.activated:
        raise NotActivated
    spent = replace(
        session,
        state=SessionState.CONSUMED,
        code_hmac="",
        verified_at=ctx.now,
        updated_at=ctx.now,
        auth_until=ctx.now + ctx.rules.account_session_s,
    )
    notices = (
        (Mail(MailKind.LOGIN_NOTICE, user.email, user.id, (("at", ctx.now),)),) if user.notify_login else ()
    )
    data = {"pubkey": user.pubkey, "backup": user.backup}
    if user.entropy:  # an account made by register has none
        data = {"entropy": user.entropy, **data}
    seen = replace(user, last_login_at=ctx.now, last_seen=ctx.now)
    return _then((_P, _C), Decision(Success(data), (PutSession(spent), PutUser(seen)), notices))


def _finish_register(session: SessionRow, user: UserRow, view: View, ctx: Context) -> Decision:
    """A register code matched: the address is proven and the account active at once."""
    if user.activated:  # another session finished this signup meanwhile
        raise EmailTaken
    # No entropy: the backup is under the password alone (a seed session's verification of the
    # same entry may have drawn one meanwhile; a login must not hand it out for this backup).
    active = replace(user, verified=True, activated=True, entropy="", last_seen=ctx.now, updated_at=ctx.now)
    spent = replace(
        session,
        state=SessionState.CONSUMED,
        code_hmac="",
        verified_at=ctx.now,
        updated_at=ctx.now,
        auth_until=ctx.now + ctx.rules.account_session_s,
    )
    cancelled, told = _cancel_pending_changes(view, active, ctx)
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),))
    writes = (PutUser(active), PutSession(spent), *cancelled)
    return _then((_P, _C), Decision(Success(), writes, (welcome, *told)))


def _wrong_code(session: SessionRow, user: UserRow | None, view: View, ctx: Context) -> Decision:
    """Count a wrong code on the session and against its subject's day. Past the day's free
    wrong codes the session takes no second try; the account's owner is told when that starts."""
    attempts = session.attempts + 1
    today = sum(1 for t in view.failures if t > ctx.now - DAY_S) + 1
    free = ctx.rules.code_failures_free_per_day
    left = ctx.rules.max_code_attempts - attempts if today <= free else 0
    failure = RecordCodeFailure(_subject(session, user), ctx.now)
    told: tuple[Mail, ...] = ()
    if today == free + 1 and user is not None and not session.decoy:
        told = (Mail(MailKind.CODE_GUESSING, user.email, user.id, (("at", ctx.now),)),)
    if left <= 0:
        locked = replace(
            session, attempts=attempts, state=SessionState.LOCKED, code_hmac="", updated_at=ctx.now
        )
        reply = Failure.of(TooManyAttempts())
        return _then((_P, _L), Decision(reply, (PutSession(locked), failure), told))
    counted = replace(session, attempts=attempts, updated_at=ctx.now)
    reply = Failure.of(CodeInvalid(attempts_left=left))
    return _then((_P, _P), Decision(reply, (PutSession(counted), failure), told))


@rule(
    Method.RESEND_CODE,
    row(_P, _P, "ok", "new code emailed, old one void (private mode: a decoy when capped)"),
    row(_P, _P, "rate_limited", "within resend_cooldown_s, or a code cap"),
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
    if session.decoy or user is None:
        return _then((_P, _P), _renew_decoy(session, ctx))
    try:
        _check_caps(view, ctx, proven=_proven(session.purpose, user))
    except RateLimited:
        if not ctx.rules.private_mode:
            raise
        return _then((_P, _P), _renew_decoy(session, ctx))
    return _then((_P, _P), _renew_code(session, user, ctx))


def _renew_code(
    session: SessionRow, user: UserRow, ctx: Context, *, reset_attempts: bool = False
) -> Decision:
    """A new code for ``session`` (the old one stops working), emailed and counted."""
    code = codes.new_code(ctx.rng)
    to = _code_address(session.purpose, user)
    renewed = replace(
        session,
        state=SessionState.PENDING,
        attempts=0 if reset_attempts else session.attempts,
        code_hmac=codes.code_hmac(ctx.code_secret, session.pubkey, code),
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
        subject=failure_subject(session.purpose, user, to),
    )
    writes = (PutSession(renewed), RecordCodeSend(canonical_mailbox(to), ctx.now))
    return Decision(Success(), writes, (_code_mail(session.purpose, user, code, ctx),))


def _renew_decoy(session: SessionRow, ctx: Context) -> Decision:
    """A decoy's resend: the same answer and timing rules, and nothing sent."""
    renewed = replace(
        session,
        code_hmac="",
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
    )
    return Decision(Success(), (PutSession(renewed),))


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
    user: UserRow, new_email: str, holder: UserRow | None, rivals: tuple[UserRow, ...], ctx: Context
) -> Decision:
    """The operator moves an account to an address checked out of band; the old one is told.

    The same rules as a confirmed change by the user: another verified account's address is
    refused; a signup never verified there is erased; other accounts' pending changes to it are
    cancelled and their requesters told (``rivals``: those accounts).
    """
    if holder is not None and holder.id != user.id and holder.verified:
        raise EmailTaken("That address belongs to another account.")
    if new_email == user.email:
        raise InvalidEmail("This is already the account's address.")
    unfinished = (DeleteUser(holder.id),) if holder is not None and holder.id != user.id else ()
    moved = replace(user, email=new_email, pending_email="", grace_deadline=None, updated_at=ctx.now)
    notice = Mail(MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", new_email), ("at", ctx.now)))
    cancelled, told = _cancel_pending_changes(View(pending_users=rivals), moved, ctx)
    mails = ((notice,) if user.activated else ()) + told
    return Decision(Success(), (*unfinished, PutUser(moved), *cancelled), mails)


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
    if not user.activated or not user.backup_previous:
        raise AdminError("the account has no previous backup to restore")
    restored = replace(user, backup=user.backup_previous, backup_previous=user.backup, updated_at=ctx.now)
    notice = Mail(MailKind.BACKUP_CHANGED, user.email, user.id, (("at", ctx.now),))
    return Decision(Success(), (PutUser(restored),), (notice,))


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
    row(None, _P, "ok", "code to the new address, notice to the old one (private mode: see there)"),
    row(None, None, "ok", "back to the current address: the pending change is cancelled"),
    row(None, None, "email_taken", "the address belongs to another verified account"),
    row(None, None, "invalid_email", "already the account's address, nothing pending"),
    row(None, None, "rate_limited", "too many codes to this mailbox, its domain or in all this hour"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _change_email(request: ChangeEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    if request.email == user.email:
        if not user.pending_email:
            raise InvalidEmail("This is already the account's address.")
        cancelled = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
        return _then((None, None), Decision(Success(), (PutUser(cancelled),)))
    holder = view.email_user
    taken = holder is not None and holder.id != user.id and holder.verified
    if taken and not ctx.rules.private_mode:
        raise EmailTaken
    live = bool(user.pending_email) and _grace_left(user, ctx)
    deadline = (
        user.grace_deadline if live and user.grace_deadline is not None else ctx.now + ctx.rules.email_grace_s
    )
    changing = replace(user, pending_email=request.email, grace_deadline=deadline, updated_at=ctx.now)
    if taken:  # private mode: answered as for a free address, but no code goes to its owner
        decision = _then((None, _P), _decoy(pubkey, request.email, Purpose.EMAIL_CHANGE, ctx, changing))
        decision = replace(decision, writes=(PutUser(changing), *decision.writes))
    else:
        decision = _open_session(pubkey, changing, Purpose.EMAIL_CHANGE, view, ctx, (PutUser(changing),))
    notice = Mail(
        MailKind.EMAIL_CHANGE_NOTICE, user.email, user.id, (("new_email", request.email), ("at", ctx.now))
    )
    return replace(decision, mails=(*decision.mails, notice))


@rule(
    Method.CONFIRM_EMAIL,
    row(_P, _C, "ok", "code matches: the address switches, notice to the old one; rival changes cancelled"),
    row(_P, _C, "change_expired", "the grace period ran out: the change lapses"),
    row(_P, _C, "email_taken", "the address was verified by someone else meanwhile: the change is released"),
    *CODE_ROWS,
    row(None, None, "no_session", "no pending email change for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _confirm_email(request: ConfirmEmail, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.EMAIL_CHANGE)
    if not user.pending_email:
        raise NoSession("There is no pending email change.")
    spent = replace(session, state=SessionState.CONSUMED, code_hmac="", updated_at=ctx.now)
    released = replace(user, pending_email="", grace_deadline=None, updated_at=ctx.now)
    if not _grace_left(user, ctx):
        return _then((_P, _C), Decision(Failure.of(ChangeExpired()), (PutUser(released), PutSession(spent))))
    _check_code(session, user, request.code, pubkey, view, ctx)
    holder = view.email_user
    if holder is not None and holder.id != user.id and holder.verified:  # proven by its owner meanwhile
        return _then((_P, _C), Decision(Failure.of(EmailTaken()), (PutUser(released), PutSession(spent))))
    # A signup never verified does not own the address: it is erased, and this change wins.
    unfinished = (DeleteUser(holder.id),) if holder is not None and holder.id != user.id else ()
    switched = replace(released, email=user.pending_email)
    notice = Mail(
        MailKind.EMAIL_CHANGED, user.email, user.id, (("new_email", user.pending_email), ("at", ctx.now))
    )
    cancelled, told = _cancel_pending_changes(view, switched, ctx)
    writes = (*unfinished, PutUser(switched), PutSession(spent), *cancelled)
    return _then((_P, _C), Decision(Success({"email": switched.email}), writes, (notice, *told)))


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
    *CODE_ROWS,
    row(None, None, "no_session", "no pending deletion for this key"),
    row(None, None, "unknown_account", "the key is not an activated account's"),
)
def _delete_account(request: DeleteAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = _account(view)
    session = _purpose_session(view, user, Purpose.DELETION)
    _check_code(session, user, request.code, pubkey, view, ctx)
    notice = Mail(MailKind.ACCOUNT_DELETED, user.email, None, (("at", ctx.now),))
    return _then((_P, None), Decision(Success(), (DeleteUser(user.id),), (notice,)))


TRANSITIONS: tuple[Transition, ...] = tuple(row for entry in RULES.values() for row in entry.rows)
"""Every row of every method, in the order of the rules: docs/protocol.md shows this table."""


# --- shared steps ------------------------------------------------------------------------------

DAY_S = 24 * 3600
MAX_CODE_SPACING_S = 3600  # the guessing back-off never makes the owner wait longer for a code


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


def _check_code(
    session: SessionRow, user: UserRow | None, code: str, pubkey: str, view: View, ctx: Context
) -> None:
    """Expiry, then the constant-time comparison; a wrong code is counted (and may lock). A decoy
    (no code was ever sent) is always wrong."""
    if ctx.now >= session.code_expires_at:
        raise CodeExpired
    wrong = session.decoy or user is None
    if wrong or not codes.code_matches(ctx.code_secret, pubkey, code, session.code_hmac):
        raise _WrongCode(_wrong_code(session, user, view, ctx))


def _grace_left(user: UserRow, ctx: Context) -> bool:
    return user.grace_deadline is not None and ctx.now < user.grace_deadline


def _cancel_pending_changes(
    view: View, owner: UserRow, ctx: Context
) -> tuple[tuple[Write, ...], tuple[Mail, ...]]:
    """``owner`` proved the address: other accounts' pending changes to it end, and each
    requester is told at its current address."""
    writes: list[Write] = []
    mails: list[Mail] = []
    for other in view.pending_users:
        if other.id == owner.id or other.pending_email != owner.email:
            continue
        writes.append(PutUser(replace(other, pending_email="", grace_deadline=None, updated_at=ctx.now)))
        params: tuple[tuple[str, str | int], ...] = (("new_email", other.pending_email), ("at", ctx.now))
        mails.append(Mail(MailKind.EMAIL_CHANGE_CANCELLED, other.email, other.id, params))
    return tuple(writes), tuple(mails)


def _own_session(view: View) -> tuple[SessionRow, UserRow | None]:
    """The event key's session and its user (None for a decoy), or ``no_session``."""
    if view.session is None or (view.session.user_id is not None and view.session_user is None):
        raise NoSession
    return view.session, view.session_user


def _is_retry(session: SessionRow | None, user: UserRow, purpose: Purpose, ctx: Context) -> bool:
    """True when this key already has a live pending session for the same user and purpose.

    Never in private mode: whether a session was kept or replaced would tell which kind of
    address it is (a decoy cannot be "the same user"), so there every request opens a new one."""
    return (
        not ctx.rules.private_mode
        and session is not None
        and session.user_id == user.id
        and session.purpose is purpose
        and session.state is SessionState.PENDING
        and ctx.now < session.code_expires_at
    )


def _proven(purpose: Purpose, user: UserRow) -> bool:
    """The code goes to an address its owner has proven (not a signup's, not a new address)."""
    return user.verified and purpose is not Purpose.EMAIL_CHANGE


def _check_caps(view: View, ctx: Context, *, proven: bool = False) -> None:
    """The hourly code caps: per mailbox (with the guessing back-off), per domain and in all.

    The domain and overall caps bound mail to addresses nobody has proven, which a stranger with
    proof of work can make up by the thousand; a code to a ``proven`` address (a login, a
    deletion) skips them, so such a flood can delay new signups but never lock anyone out."""
    rules, window = ctx.rules, ctx.rules.code_window_s
    recent = sorted(t for t in view.code_sends if t > ctx.now - window)
    cap = rules.max_codes_per_email_per_hour
    if len(recent) >= cap:
        retry_after = recent[len(recent) - cap] + window - ctx.now
        raise RateLimited(
            "Too many codes sent to this address; try later.", retry_after_s=max(1, retry_after)
        )
    wrong = sum(1 for t in view.failures if t > ctx.now - DAY_S)
    if wrong >= rules.code_failures_free_per_day and recent:
        past = wrong - rules.code_failures_free_per_day
        spacing = min(MAX_CODE_SPACING_S, rules.code_failure_backoff_s * 2 ** min(past, 20))
        if recent[-1] + spacing > ctx.now:
            message = "Many wrong codes for this address today: codes go out less often; try later."
            raise RateLimited(message, retry_after_s=recent[-1] + spacing - ctx.now)
    if proven:
        return
    for sends, cap, what in (
        (view.domain_sends, rules.max_codes_per_domain_per_hour, "this domain"),
        (view.all_sends, rules.max_codes_per_hour, "all addresses"),
    ):
        if sends.count >= cap:
            retry_after = (sends.oldest or ctx.now) + window - ctx.now
            raise RateLimited(f"Too many codes sent to {what}; try later.", retry_after_s=max(1, retry_after))


def _code_address(purpose: Purpose, user: UserRow) -> str:
    """Where a session's code goes: an email change's code goes to the NEW address."""
    return user.pending_email if purpose is Purpose.EMAIL_CHANGE else user.email


def _subject(session: SessionRow, user: UserRow | None) -> str:
    """Where a session's wrong codes count (older sessions did not record it)."""
    if session.subject or user is None:
        return session.subject
    return failure_subject(session.purpose, user, _code_address(session.purpose, user))


def failure_subject(purpose: Purpose, owner: UserRow | None, address: str) -> str:
    """Signup and login codes count per mailbox (a stranger's guesses at someone's address); email
    change and deletion codes per account (their guesser is the account key's holder)."""
    if owner is not None and purpose in (Purpose.EMAIL_CHANGE, Purpose.DELETION):
        return f"account:{owner.id}"
    return canonical_mailbox(address)


def _open_session(
    pubkey: str, user: UserRow, purpose: Purpose, view: View, ctx: Context, first: tuple[Write, ...]
) -> Decision:
    """A new pending session for ``pubkey`` (replacing any older one of that key) and its code.
    In private mode a capped address gets a decoy instead of ``rate_limited``."""
    to = _code_address(purpose, user)
    try:
        _check_caps(view, ctx, proven=_proven(purpose, user))
    except RateLimited:
        if not ctx.rules.private_mode:
            raise
        decoy = _decoy(pubkey, to, purpose, ctx, user if purpose is Purpose.EMAIL_CHANGE else None)
        return _then((None, _P), replace(decoy, writes=(*first, *decoy.writes)))
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
        subject=failure_subject(purpose, user, to),
    )
    writes = (*first, PutSession(session), RecordCodeSend(canonical_mailbox(to), ctx.now))
    return _then((None, _P), Decision(Success(), writes, (_code_mail(purpose, user, code, ctx),)))


def _decoy(
    pubkey: str, address: str, purpose: Purpose, ctx: Context, owner: UserRow | None = None
) -> Decision:
    """Private mode: a pending session like any other, whose code was never sent (and so never
    matches). ``owner`` keeps an email change's session on its account."""
    session = SessionRow(
        pubkey=pubkey,
        user_id=owner.id if owner is not None else None,
        purpose=purpose,
        state=SessionState.PENDING,
        code_hmac="",
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=ctx.now,
        updated_at=ctx.now,
        subject=failure_subject(purpose, owner, address),
        decoy=True,
    )
    return Decision(Success(), (PutSession(session),))


_CODE_MAILS = {
    Purpose.SIGNUP: MailKind.SIGNUP_CODE,
    Purpose.LOGIN: MailKind.LOGIN_CODE,
    Purpose.EMAIL_CHANGE: MailKind.EMAIL_CHANGE_CODE,
    Purpose.DELETION: MailKind.DELETION_CODE,
    Purpose.REGISTER: MailKind.SIGNUP_CODE,
}


def _code_mail(purpose: Purpose, user: UserRow, code: str, ctx: Context) -> Mail:
    """The code email, to the session's code address."""
    params = (("code", code), ("expires_at", ctx.now + ctx.rules.code_ttl_s))
    return Mail(_CODE_MAILS[purpose], _code_address(purpose, user), user.id, params)

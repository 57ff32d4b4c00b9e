"""Login on a new device (``request_login``), and the code steps every signup and login shares:
``verify_code`` (a signup code verifies the address, a register code activates the account, a
login code hands back the backup) and ``resend_code``."""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts import codes
from dvm.accounts.code_rules import decoy, open_session, redeem, renew, renew_decoy
from dvm.accounts.decision import Decision, Mail, MailKind, PutSession, PutUser, Success, View, Write
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.signup import is_retry, own_session
from dvm.accounts.table import CODE_ROWS, PRICED, VOIDED, C, Context, L, P, V, row, rule, then
from dvm.accounts.upkeep import cancel_pending_changes
from dvm.errors import (
    CodeInvalid,
    EmailTaken,
    NoSession,
    NotActivated,
    PubkeyTaken,
    RateLimited,
    TooManyAttempts,
    UnknownEmail,
)
from dvm.protocol.methods import Method, RequestLogin, ResendCode, VerifyCode


@rule(
    Method.REQUEST_LOGIN,
    row(None, P, "ok", "activated email: a session on the mailbox's login code (private mode: see there)"),
    row(P, P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "unknown_email", "no account for this email"),
    row(None, None, "not_activated", "signup never finished"),
    PRICED,
)
def request_login(request: RequestLogin, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if ctx.rules.private_mode and (user is None or not user.activated):
        if user is None:
            return decoy(pubkey, request.email, Purpose.LOGIN, view, ctx)
        return open_session(pubkey, user, Purpose.SIGNUP, view, ctx)
    if user is None:
        raise UnknownEmail
    if not user.activated:
        raise NotActivated
    if is_retry(view.session, user, Purpose.LOGIN, ctx):
        return then((P, P), Decision(Success()))
    return open_session(pubkey, user, Purpose.LOGIN, view, ctx)


@rule(
    Method.VERIFY_CODE,
    row(P, V, "ok", "signup code matches: user verified, entropy returned; pending changes to it cancelled"),
    row(
        P,
        C,
        "ok",
        "login code: pubkey, backup (seed accounts: entropy) returned; register code: account activated",
    ),
    *CODE_ROWS,
    row(V, V, "code_invalid", "a code works once"),
    row(None, None, "no_session", "no session for this key"),
    VOIDED,
    row(P, P, "email_taken", "signup or register code, but another session activated the account"),
    row(P, P, "pubkey_taken", "register code, but its key was activated by another account meanwhile"),
    row(P, P, "not_activated", "login code, but the account was never activated"),
)
def verify_code(request: VerifyCode, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = own_session(view)
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is SessionState.VERIFIED:
        raise CodeInvalid("This code has already been used.")
    if session.state is not SessionState.PENDING:
        raise NoSession
    if session.purpose not in (Purpose.SIGNUP, Purpose.LOGIN, Purpose.REGISTER):
        raise NoSession("This key's session is not a signup or login session.")
    session, user = _unless_void(session, user, view, ctx)
    spent = redeem(session, user, request.code, view, ctx)
    assert user is not None  # a decoy's code never matches
    if session.purpose is Purpose.REGISTER:
        return _finish_register(session, user, spent, view, ctx)
    if session.purpose is Purpose.SIGNUP:
        if user.activated:  # another session finished this signup meanwhile
            raise EmailTaken
        entropy = user.entropy or codes.new_token(ctx.rng, 32)
        verified_user = replace(
            user, verified=True, entropy=entropy, updated_at=ctx.now, lang=ctx.lang or user.lang
        )
        verified = replace(
            session, state=SessionState.VERIFIED, code_hmac="", verified_at=ctx.now, updated_at=ctx.now
        )
        cancelled, told = cancel_pending_changes(view, user, ctx)
        writes = (*spent, PutUser(verified_user), PutSession(verified), *cancelled)
        return then((P, V), Decision(Success({"entropy": entropy}), writes, told))
    if not user.activated:
        raise NotActivated
    seen = replace(user, last_login_at=ctx.now, last_seen=ctx.now, lang=ctx.lang or user.lang)
    notices = (
        (Mail(MailKind.LOGIN_NOTICE, user.email, user.id, (("at", ctx.now),), seen.lang),)
        if user.notify_login
        else ()
    )
    data = {"pubkey": user.pubkey, "backup": user.backup}
    if user.entropy:  # an account made by register has none
        data = {"entropy": user.entropy, **data}
    writes = (*spent, PutSession(_proven(session, user, ctx)), PutUser(seen))
    return then((P, C), Decision(Success(data), writes, notices))


def _proven(session: SessionRow, user: UserRow, ctx: Context) -> SessionRow:
    """A session whose code matched: finished, and allowed to act for the account a while."""
    return replace(
        session,
        state=SessionState.CONSUMED,
        code_hmac="",
        verified_at=ctx.now,
        updated_at=ctx.now,
        auth_until=ctx.now + ctx.rules.account_session_s,
        auth_epoch=user.auth_epoch,
        claim_backup="",
    )


def _finish_register(
    session: SessionRow, user: UserRow, spent: tuple[Write, ...], view: View, ctx: Context
) -> Decision:
    """A register code matched: the address is proven, and the session's key and backup become
    the account's at once."""
    if user.activated:  # another session finished this signup meanwhile
        raise EmailTaken
    if view.pubkey_user is not None and view.pubkey_user.id != user.id:
        raise PubkeyTaken
    # No entropy: the backup is under the password alone (a seed session's verification of the
    # same entry may have drawn one meanwhile; a login must not hand it out for this backup).
    active = replace(
        user,
        verified=True,
        activated=True,
        entropy="",
        pubkey=session.claim_pubkey,
        backup=session.claim_backup,
        last_seen=ctx.now,
        updated_at=ctx.now,
        lang=ctx.lang or user.lang,
    )
    cancelled, told = cancel_pending_changes(view, active, ctx)
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),), active.lang)
    writes = (*spent, PutUser(active), PutSession(_proven(session, active, ctx)), *cancelled)
    return then((P, C), Decision(Success(), writes, (welcome, *told)))


@rule(
    Method.RESEND_CODE,
    row(P, P, "ok", "the mailbox's live code serves, or a new one is mailed; the older codes keep working"),
    row(P, P, "rate_limited", "within resend_cooldown_s of this session's last request for a code"),
    row(P, P, "pow_too_low", "a new code past the mailbox's hourly cap costs more proof of work"),
    row(L, L, "too_many_attempts", "a locked session gets no new code"),
    row(None, None, "no_session", "no pending session for this key"),
    VOIDED,
)
def resend_code(request: ResendCode, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = own_session(view)
    if session.state is SessionState.LOCKED:
        raise TooManyAttempts
    if session.state is not SessionState.PENDING:
        raise NoSession("This session has no pending code to resend.")
    wait = session.code_sent_at + ctx.rules.resend_cooldown_s - ctx.now
    if wait > 0:
        raise RateLimited("Wait before asking for another code.", retry_after_s=wait)
    session, user = _unless_void(session, user, view, ctx)
    if session.decoy or user is None:
        return then((P, P), renew_decoy(session, view, ctx))
    return then((P, P), renew(session, user, view, ctx))


def _unless_void(
    session: SessionRow, user: UserRow | None, view: View, ctx: Context
) -> tuple[SessionRow, UserRow | None]:
    """A pending session the account has moved past (a new address, a new backup, a revocation)
    is void: ``no_session``; in private mode one opened by naming the address answers from then
    on as a decoy's would, so a stranger's session on an address never shows what its owner did
    (the account's own email-change and deletion sessions answer ``no_session``)."""
    if session.decoy or user is None:
        return session, user
    moved = session.auth_epoch != user.auth_epoch or bool(session.address and not view.session_address)
    if not moved:
        return session, user
    if not ctx.rules.private_mode or session.purpose not in _NAMED:
        raise NoSession("The account changed since this session began: start again.")
    return replace(session, decoy=True, user_id=None), None


_NAMED = frozenset({Purpose.SIGNUP, Purpose.LOGIN, Purpose.REGISTER})
"""Sessions anyone may open by naming an address (a stranger's, as like as not)."""

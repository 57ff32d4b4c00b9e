"""Signup: ``request_account`` + ``activate`` (the code flow with server entropy) and ``register``
(SIGit's one-event flow). A pending signup claims nothing: the key and backup a ``register``
session brings wait in the session until its code matches, and an unfinished signup is replaced
only by someone who proves the address, never by a request."""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts import codes
from dvm.accounts.code_rules import open_session
from dvm.accounts.decision import Decision, Mail, MailKind, PutSession, PutUser, Success, View, Write
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.table import PRICED, C, Context, L, P, V, row, rule, then
from dvm.errors import (
    AlreadyActivated,
    EmailTaken,
    NoSession,
    NotVerified,
    PubkeyTaken,
    SessionExpired,
    TooManyAttempts,
)
from dvm.protocol.methods import Activate, Method, Register, RequestAccount


def new_user(email: str, ctx: Context) -> UserRow:
    """The record of an address someone asked to sign up (unverified, no key)."""
    return UserRow(
        id=codes.new_token(ctx.rng, 16),
        email=email,
        verified=False,
        activated=False,
        entropy="",
        pubkey="",
        backup="",
        created_at=ctx.now,
        updated_at=ctx.now,
    )


def is_retry(session: SessionRow | None, user: UserRow, purpose: Purpose, ctx: Context) -> bool:
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


def own_session(view: View) -> tuple[SessionRow, UserRow | None]:
    """The event key's session and its user (None for a decoy), or ``no_session``."""
    if view.session is None or (view.session.user_id is not None and view.session_user is None):
        raise NoSession
    return view.session, view.session_user


@rule(
    Method.REQUEST_ACCOUNT,
    row(
        None,
        P,
        "ok",
        "new or unfinished email: a session on the mailbox's signup code (private mode: see there)",
    ),
    row(P, P, "ok", "same key, same email, still pending: nothing new"),
    row(None, None, "email_taken", "email belongs to an activated account"),
    PRICED,
)
def request_account(request: RequestAccount, pubkey: str, view: View, ctx: Context) -> Decision:
    user = view.email_user
    if user is not None and user.activated:
        if not ctx.rules.private_mode:
            raise EmailTaken
        return open_session(pubkey, user, Purpose.LOGIN, view, ctx, touched(user, ctx))
    if user is not None and is_retry(view.session, user, Purpose.SIGNUP, ctx):
        return then((P, P), Decision(Success()))
    first: tuple[Write, ...] = touched(user, ctx) if user is not None else ()
    if user is None:
        user = new_user(request.email, ctx)
        first = (PutUser(user),)
    return open_session(pubkey, user, Purpose.SIGNUP, view, ctx, first)


def touched(user: UserRow, ctx: Context) -> tuple[Write, ...]:
    """Private mode: a request naming an existing address writes its user row, as one naming a
    new address creates one, so the work (and its time) is the same either way."""
    return (PutUser(replace(user, updated_at=ctx.now)),) if ctx.rules.private_mode else ()


@rule(
    Method.ACTIVATE,
    row(V, C, "ok", "pubkey and backup stored, user activated"),
    row(C, C, "ok", "same pubkey and backup again: no-op"),
    row(C, C, "already_activated", "different pubkey or backup"),
    row(P, P, "email_taken", "another session activated the account"),
    row(V, V, "email_taken", "another session activated the account after this one verified"),
    row(P, P, "not_verified", "code not verified yet (private mode: any pending session)"),
    row(L, L, "too_many_attempts", "the session was locked by wrong codes"),
    row(V, V, "session_expired", "verified longer than activation_window_s ago"),
    row(V, V, "pubkey_taken", "the (proven) key belongs to an activated account"),
    row(None, None, "no_session", "no signup session for this key"),
)
def activate(request: Activate, pubkey: str, view: View, ctx: Context) -> Decision:
    session, user = own_session(view)
    if session.state is SessionState.PENDING and (ctx.rules.private_mode or session.decoy):
        raise NotVerified  # a login session or a decoy answers as a signup would
    if session.purpose is not Purpose.SIGNUP or user is None:
        raise NoSession("Activation needs a request_account signup session; this session is not one.")
    if user.activated:
        if session.state is not SessionState.CONSUMED:  # another session finished this signup
            raise EmailTaken
        if (user.pubkey, user.backup) == (request.pubkey, request.backup):
            return then((C, C), Decision(Success()))  # this session's own activation, repeated
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
        lang=ctx.lang or user.lang,
    )
    consumed = replace(
        session,
        state=SessionState.CONSUMED,
        updated_at=ctx.now,
        auth_until=ctx.now + ctx.rules.account_session_s,
        auth_epoch=user.auth_epoch,
    )
    welcome = Mail(MailKind.WELCOME, user.email, user.id, (("at", ctx.now),), activated.lang)
    return then((V, C), Decision(Success(), (PutUser(activated), PutSession(consumed)), (welcome,)))


@rule(
    Method.REGISTER,
    row(
        None,
        P,
        "ok",
        "new or unfinished email: a session holding the key and backup, on the mailbox's signup code",
    ),
    row(P, P, "ok", "same key, email, pubkey and backup, still pending: nothing new"),
    row(None, None, "email_taken", "email belongs to an activated account (last_seen set): go to login"),
    row(None, None, "pubkey_taken", "the (proven) key belongs to an activated account"),
    PRICED,
)
def register(request: Register, pubkey: str, view: View, ctx: Context) -> Decision:
    """SIGit's one-event signup: the session keeps the key and backup, and the emailed code
    activates them (``verify_code``). The key is checked first, so the answer about it (only its
    holder can ask: the request is signed by it) says nothing about the address."""
    holder = view.pubkey_user
    if holder is not None and holder.activated:
        raise PubkeyTaken
    user = view.email_user
    if user is not None and user.activated:
        if not ctx.rules.private_mode:
            raise EmailTaken
        return open_session(pubkey, user, Purpose.LOGIN, view, ctx, touched(user, ctx))
    session = view.session
    if (
        user is not None
        and is_retry(session, user, Purpose.REGISTER, ctx)
        and session is not None
        and (session.claim_pubkey, session.claim_backup) == (request.pubkey, request.backup)
    ):
        return then((P, P), Decision(Success()))
    first: tuple[Write, ...] = touched(user, ctx) if user is not None else ()
    if user is None:
        user = new_user(request.email, ctx)
        first = (PutUser(user),)
    claim = (request.pubkey, request.backup)
    return open_session(pubkey, user, Purpose.REGISTER, view, ctx, first, claim=claim)

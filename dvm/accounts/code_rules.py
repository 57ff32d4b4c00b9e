"""The shared code rules: who gets a code, when a new one is mailed, what a guess costs.

Owners first (docs/threat-model.md): a stranger may bound how much mail a mailbox receives, and
may pay any price, but can never stop the address's owner from getting in. So:

* A code proves a **mailbox** (for one kind of proof), not a session. Every session that asked
  for a code of one kind for one mailbox redeems the newest two codes mailed there, whoever
  triggered them; the owner always holds the newest one.
* A new code is mailed when none is live, or when the live one is older than
  ``resend_cooldown_s`` and fewer than ``max_codes_per_email_per_hour`` were minted for the
  mailbox this hour; otherwise the session joins the live code. So mail to a mailbox is bounded
  and no request is ever refused for it.
* Guessing: each session has ``max_code_attempts`` tries; wrong codes on a mailbox's real codes
  count (decoys' never do), and past ``code_failures_free`` of them within
  ``code_failure_window_s`` the mailbox's codes are twelve digits and six-digit ones stop
  working: guessing stops, and the owner's codes are neither delayed nor refused (they are
  longer). The owner is told once, when that starts.
* Codes to addresses nobody has proven cost more proof of work, not a refusal, while their
  domain (or everyone) got more than its hourly share: ``pow_too_low`` with ``required_bits``.

Pure: the store loads the mailbox's recent codes, sends and failures into the
:class:`~dvm.accounts.decision.View`.
"""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts import codes
from dvm.accounts.decision import (
    Decision,
    DecoyWork,
    Mail,
    MailKind,
    PutCode,
    PutSession,
    RecordCodeFailure,
    RecordCodeSend,
    SpendCode,
    Success,
    View,
    Write,
)
from dvm.accounts.rows import CodeKind, CodeRow, Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.table import Context, P, then
from dvm.errors import CodeExpired, CodeInvalid, PowTooLow, RequestError, TooManyAttempts
from dvm.protocol.email_address import canonical_mailbox
from dvm.protocol.results import Failure

MAX_PRICE_EXTRA_BITS = 8
"""The price of a busy domain stops rising this many bits above the method's minimum (about
256 times its work: a few minutes in a browser), so a real person is never priced out."""

CODES_ACCEPTED = 2
"""A session redeems the newest this many unused codes of its mailbox and kind: the newest, and
the one before it (a mail still on its way, or read late)."""

_NAMED = frozenset({Purpose.SIGNUP, Purpose.REGISTER, Purpose.LOGIN})
"""Sessions opened by a request that names an address: in private mode all pay a busy domain's
price alike, whatever the address is (the price must not tell a login from a signup)."""

_CODE_MAILS = {
    CodeKind.SIGNUP: MailKind.SIGNUP_CODE,
    CodeKind.LOGIN: MailKind.LOGIN_CODE,
    CodeKind.EMAIL_CHANGE: MailKind.EMAIL_CHANGE_CODE,
    CodeKind.DELETION: MailKind.DELETION_CODE,
}


def code_address(purpose: Purpose, user: UserRow) -> str:
    """Where a session's codes go: an email change's to the NEW address."""
    return user.pending_email if purpose is Purpose.EMAIL_CHANGE else user.email


def unproven(purpose: Purpose, user: UserRow) -> bool:
    """The code goes to an address nobody has proven yet (a signup's, an email change's new one):
    only those count against, and pay for, the domain and overall shares."""
    return not user.verified or purpose in (Purpose.SIGNUP, Purpose.REGISTER, Purpose.EMAIL_CHANGE)


def long_codes(view: View, ctx: Context) -> bool:
    """Whether the mailbox's codes are long: it took too many wrong codes within the window."""
    since = ctx.now - ctx.rules.code_failure_window_s
    return sum(1 for t in view.failures if t > since) >= ctx.rules.code_failures_free


def price(view: View, ctx: Context, *, applies: bool) -> None:
    """Refuse with ``pow_too_low`` a request for a code that brought less proof of work than the
    current price: the method's minimum, plus one bit at its domain's (or everyone's) hourly
    share of codes to unproven addresses and one more at each doubling past it."""
    if not applies:
        return
    rules = ctx.rules
    extra = max(
        _doublings(view.domain_sends.count, rules.max_codes_per_domain_per_hour),
        _doublings(view.all_sends.count, rules.max_codes_per_hour),
    )
    if extra == 0:
        return
    required = ctx.pow_minimum + min(extra, MAX_PRICE_EXTRA_BITS)
    if ctx.pow_bits < required:
        raise PowTooLow(
            "Many signups are under way for addresses like this one: mine this request to required_bits.",
            required_bits=required,
        )


def _doublings(count: int, cap: int) -> int:
    """0 under ``cap``; 1 at it, and one more at each doubling past it."""
    extra = 0
    while count >= cap << extra and extra <= MAX_PRICE_EXTRA_BITS:
        extra += 1
    return extra


def open_session(
    pubkey: str,
    user: UserRow,
    purpose: Purpose,
    view: View,
    ctx: Context,
    first: tuple[Write, ...] = (),
    *,
    claim: tuple[str, str] = ("", ""),
) -> Decision:
    """A new pending session for ``pubkey`` (replacing any older one of that key) on its
    mailbox's live code, or on a new code mailed now (see the module docstring)."""
    address = code_address(purpose, user)
    price(view, ctx, applies=unproven(purpose, user) or (ctx.rules.private_mode and purpose in _NAMED))
    mailbox = canonical_mailbox(address)
    writes, mails = _code_for(address, mailbox, purpose, user, view, ctx)
    session = SessionRow(
        pubkey=pubkey,
        user_id=user.id,
        purpose=purpose,
        state=SessionState.PENDING,
        code_hmac="",
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=ctx.now,
        updated_at=ctx.now,
        subject=mailbox,
        claim_pubkey=claim[0],
        claim_backup=claim[1],
    )
    return then((None, P), Decision(Success(), (*first, PutSession(session), *writes), mails))


def renew(session: SessionRow, user: UserRow, view: View, ctx: Context, *, forced: bool = False) -> Decision:
    """A pending session asks for a code again: a new one is mailed if the mailbox may have one
    (``forced``: an operator's resend, always), else the session joins the live one; either way
    its own deadline starts again. The codes mailed before keep working. Not priced: the request
    that opened the session paid, and its mailbox's cap bounds what resends can mail."""
    address = code_address(session.purpose, user)
    mailbox = canonical_mailbox(address)
    writes, mails = _code_for(address, mailbox, session.purpose, user, view, ctx, forced=forced)
    renewed = replace(
        session,
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
        subject=mailbox,
    )
    return Decision(Success(), (PutSession(renewed), *writes), mails)


def _code_for(
    address: str,
    mailbox: str,
    purpose: Purpose,
    user: UserRow,
    view: View,
    ctx: Context,
    *,
    forced: bool = False,
) -> tuple[tuple[Write, ...], tuple[Mail, ...]]:
    """Mint and mail a code for ``address``'s mailbox (``mailbox``: its canonical form), or
    nothing (the live code serves)."""
    kind, rules, now = purpose.code_kind, ctx.rules, ctx.now
    long = long_codes(view, ctx)  # then six-digit codes no longer work: they serve nobody
    live = [
        c
        for c in view.codes
        if c.kind is kind and c.code_hmac and c.expires_at > now and (c.long or not long)
    ]
    newest = max(live, key=lambda c: c.minted_at, default=None)
    minted_this_hour = sum(1 for t in view.code_sends if t > now - rules.code_window_s)
    if (
        not forced
        and newest is not None
        and (
            now - newest.minted_at < rules.resend_cooldown_s
            or minted_this_hour >= rules.max_codes_per_email_per_hour
        )
    ):
        return (), ()
    code = codes.new_code(ctx.rng, codes.LONG_DIGITS if long else codes.CODE_DIGITS)
    row = CodeRow(
        None, kind, codes.code_hmac(ctx.code_secret, kind.value, code), now, now + rules.code_ttl_s, long
    )
    params: tuple[tuple[str, str | int], ...] = (("code", code), ("expires_at", row.expires_at))
    mail = Mail(_CODE_MAILS[kind], address, user.id, params, ctx.lang or user.lang)
    writes = (PutCode(mailbox, row), RecordCodeSend(mailbox, now, unproven(purpose, user)))
    return writes, (mail,)


def decoy(
    pubkey: str, address: str, purpose: Purpose, view: View, ctx: Context, owner: UserRow | None = None
) -> Decision:
    """Private mode: a pending session like any other, with no code at all (so every code is
    wrong for it, and its wrong codes count nowhere). It pays the same price and draws a code
    as a real one does, so its answer and its work look the same. ``owner`` keeps an email
    change's session on its account."""
    price(view, ctx, applies=True)
    kind = purpose.code_kind
    code = codes.new_code(ctx.rng, codes.LONG_DIGITS if long_codes(view, ctx) else codes.CODE_DIGITS)
    burnt = CodeRow(None, kind, "", ctx.now, ctx.now + ctx.rules.code_ttl_s)
    codes.code_hmac(ctx.code_secret, kind.value, code)  # the same work as a real code's
    params: tuple[tuple[str, str | int], ...] = (("code", code), ("expires_at", burnt.expires_at))
    mailbox = canonical_mailbox(address)
    work = DecoyWork(mailbox, _CODE_MAILS[kind], params)
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
        subject=mailbox,
        decoy=True,
    )
    return then((None, P), Decision(Success(), (PutSession(session), work)))


def renew_decoy(session: SessionRow, view: View, ctx: Context) -> Decision:
    """A decoy's resend: the same answer and deadline rules, and nothing sent."""
    renewed = replace(
        session, code_sent_at=ctx.now, code_expires_at=ctx.now + ctx.rules.code_ttl_s, updated_at=ctx.now
    )
    return Decision(Success(), (PutSession(renewed),))


class WrongCode(RequestError):
    """A wrong code, carrying the decision that counts it (raised out of a handler)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision


def redeem(
    session: SessionRow, user: UserRow | None, code: str, view: View, ctx: Context
) -> tuple[Write, ...]:
    """Check ``code`` for ``session``: the writes that spend it, or raise ``code_expired`` or a
    :class:`WrongCode`. Only the newest codes of the session's mailbox and kind are compared (in
    constant time each); while the mailbox is being guessed at, only its long codes."""
    if ctx.now >= session.code_expires_at:
        raise CodeExpired
    if session.decoy or user is None:
        raise WrongCode(wrong_code(session, user, view, ctx))
    if session.code_hmac and codes.same_hmac(
        codes.session_code_hmac(ctx.code_secret, session.pubkey, code), session.code_hmac
    ):
        return ()  # a code of an older version, the session's own: spent with the session
    kind = session.purpose.code_kind
    long = long_codes(view, ctx)
    usable = sorted(
        (c for c in view.codes if c.kind is kind and c.code_hmac and (c.long or not long)),
        key=lambda c: c.minted_at,
        reverse=True,
    )[:CODES_ACCEPTED]
    submitted = codes.code_hmac(ctx.code_secret, kind.value, code)
    matched = [c for c in usable if codes.same_hmac(submitted, c.code_hmac)]
    if not matched:
        raise WrongCode(wrong_code(session, user, view, ctx))
    if matched[0].expires_at <= ctx.now:
        raise CodeExpired
    assert matched[0].id is not None  # loaded codes have their row id
    return (SpendCode(matched[0].id),)


def wrong_code(session: SessionRow, user: UserRow | None, view: View, ctx: Context) -> Decision:
    """Count a wrong code on the session (the last allowed one locks it) and, for a real
    session, against its mailbox; the owner is told when the mailbox's codes turn long."""
    attempts = session.attempts + 1
    left = ctx.rules.max_code_attempts - attempts
    writes: tuple[Write, ...] = ()
    told: tuple[Mail, ...] = ()
    if not session.decoy and user is not None and session.subject:
        writes = (RecordCodeFailure(session.subject, ctx.now),)
        since = ctx.now - ctx.rules.code_failure_window_s
        before = sum(1 for t in view.failures if t > since)
        if before + 1 == ctx.rules.code_failures_free:
            address = code_address(session.purpose, user)
            told = (
                Mail(MailKind.CODE_GUESSING, address, user.id, (("at", ctx.now),), ctx.lang or user.lang),
            )
    if left <= 0:
        locked = replace(
            session, attempts=attempts, state=SessionState.LOCKED, code_hmac="", updated_at=ctx.now
        )
        return then(
            (P, SessionState.LOCKED),
            Decision(Failure.of(TooManyAttempts()), (PutSession(locked), *writes), told),
        )
    counted = replace(session, attempts=attempts, updated_at=ctx.now)
    return then(
        (P, P), Decision(Failure.of(CodeInvalid(attempts_left=left)), (PutSession(counted), *writes), told)
    )

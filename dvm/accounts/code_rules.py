"""The shared code rules: who gets a code, when a new one is mailed, what a guess costs.

Owners first (docs/threat-model.md): a stranger may bound how much mail a mailbox receives, and
may pay any price, but can never stop an address's owner from getting in. So:

* A code proves an **address** (its exact normalised form) for one kind of proof. Every session
  that asked for a code of that kind for that address redeems every code mailed there that is
  live (unexpired, unused), whoever's request minted it: the owner holds them all.
* A request that wants a code **joins** the address's newest code, if it is live, when it was
  minted less than ``resend_cooldown_s`` ago or when the hourly cap is reached
  (``max_codes_per_email_per_hour``); joining gives the code a new lifetime, so an owner never
  joins a dying code, and the newest code in the inbox is always one that works. Otherwise a new
  code is **minted** and mailed; past the cap that costs more proof of work (one bit, one more per
  doubling), never a refusal. The cap counts per **mailbox** (the canonical form: ``+tag``, case,
  width folded) for signup and email-change codes, which anyone may ask for any address, and per
  exact **address** for login and deletion codes, which only go to an account's own address: so a
  stranger mailing ``owner+1@``, ``owner+2@``... pays more and more, and never raises what the
  owner's own login costs.
* Guessing: each session has ``max_code_attempts`` tries; wrong codes count against the
  session's mailbox (a private-mode decoy's too, so that no mailbox turns long differently for
  having an account: long codes never delay nor refuse the owner); past ``code_failures_free`` of them within
  ``code_failure_window_s`` the mailbox's codes are sixteen digits and six-digit ones stop
  working: guessing stops, and the owner's codes are neither delayed nor refused. The owner is
  told once. A code of the same mailbox for another address or step is a slip, not a guess.
* Codes to addresses nobody has proven cost more proof of work, not a refusal, while their
  domain (or everyone) got more than its hourly share: ``pow_too_low`` with ``required_bits``.
* Private mode: a decoy (an address with no account) goes through the very same rules with
  codes nobody can know: it mints, joins, counts and pays exactly as a real address would, so
  nothing about an address shows in answers, prices or work.

Pure: the store loads the mailbox's recent codes, sends and failures into the
:class:`~dvm.accounts.decision.View`, with the key of the exact address they concern.
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
    RefreshCode,
    SpendCode,
    Success,
    View,
    Write,
)
from dvm.accounts.rows import CodeKind, CodeRow, Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.accounts.table import Context, P, then
from dvm.errors import CodeExpired, CodeInvalid, NoSession, PowTooLow, RequestError, TooManyAttempts
from dvm.protocol.email_address import canonical_mailbox
from dvm.protocol.results import Failure

MAX_PRICE_EXTRA_BITS = 8
"""A price stops rising this many bits above the method's minimum (about 256 times its work: a
few minutes in a browser), so a real person is never priced out."""

CODES_ACCEPTED = 5
"""A session compares at most this many of its address's newest live codes (the cap mints
about that many an hour): each one compared is one more chance for a guess."""

DECOY_HMAC = "-"
"""A decoy's code: a row like a real one, whose digits were never kept and match nothing."""

_NAMED = frozenset({Purpose.SIGNUP, Purpose.REGISTER, Purpose.LOGIN})
"""Sessions opened by a request that names an address: in private mode every one counts toward,
and pays, a busy domain's share alike, whatever the address is."""

_CODE_MAILS = {
    CodeKind.SIGNUP: MailKind.SIGNUP_CODE,
    CodeKind.LOGIN: MailKind.LOGIN_CODE,
    CodeKind.EMAIL_CHANGE: MailKind.EMAIL_CHANGE_CODE,
    CodeKind.DELETION: MailKind.DELETION_CODE,
}


def code_address(purpose: Purpose, user: UserRow) -> str:
    """Where a new session's codes go: an email change's to the NEW address."""
    return user.pending_email if purpose is Purpose.EMAIL_CHANGE else user.email


def unproven(purpose: Purpose, user: UserRow) -> bool:
    """The code goes to an address nobody has proven yet (a signup's, an email change's new one)."""
    return not user.verified or purpose in (Purpose.SIGNUP, Purpose.REGISTER, Purpose.EMAIL_CHANGE)


def counts_toward_shares(purpose: Purpose, user: UserRow | None, ctx: Context) -> bool:
    """Whether a code minted for a request counts toward its domain's (and everyone's) hourly
    share: codes to unproven addresses do; in private mode every request naming an address does,
    so that a price never tells a login from a signup, nor an account from nothing."""
    if ctx.rules.private_mode and purpose in _NAMED:
        return True
    return user is None or unproven(purpose, user)


def long_codes(view: View, ctx: Context) -> bool:
    """Whether the mailbox's codes are long: it took too many wrong codes within the window."""
    since = ctx.now - ctx.rules.code_failure_window_s
    return sum(1 for t in view.failures if t > since) >= ctx.rules.code_failures_free


def price(view: View, ctx: Context, *, domain: bool, mailbox: CodeKind | None) -> None:
    """Refuse with ``pow_too_low`` a request that brought less proof of work than its price: the
    method's minimum, plus (``domain``) one bit at its domain's (or everyone's) hourly share of
    codes to unproven addresses, and (``mailbox``: it mints a code of that kind) one bit at the
    kind's hourly cap; one more at each doubling past either, at most ``MAX_PRICE_EXTRA_BITS``."""
    rules = ctx.rules
    extra = 0
    if domain:
        extra = max(
            _doublings(view.domain_sends.count, rules.max_codes_per_domain_per_hour),
            _doublings(view.all_sends.count, rules.max_codes_per_hour),
        )
    if mailbox is not None:
        extra = max(
            extra, _doublings(_minted_this_hour(view, mailbox, ctx), rules.max_codes_per_email_per_hour)
        )
    if extra == 0:
        return
    required = ctx.pow_minimum + min(extra, MAX_PRICE_EXTRA_BITS)
    if ctx.pow_bits < required:
        raise PowTooLow(
            "Many codes went to addresses like this one lately: mine this request to required_bits.",
            required_bits=required,
        )


def counted(rules: AccountRules) -> tuple[int, int]:
    """The most code sends and wrong codes these rules ever count: a price stops rising at
    ``MAX_PRICE_EXTRA_BITS`` doublings past the cap, and long codes start at
    ``code_failures_free``. The store loads no more, so a request's work never grows with a
    mailbox's history."""
    return rules.max_codes_per_email_per_hour << MAX_PRICE_EXTRA_BITS, rules.code_failures_free


def _doublings(count: int, cap: int) -> int:
    """0 under ``cap``; 1 at it, and one more at each doubling past it."""
    extra = 0
    while count >= cap << extra and extra <= MAX_PRICE_EXTRA_BITS:
        extra += 1
    return extra


_PER_ADDRESS = frozenset({CodeKind.LOGIN, CodeKind.DELETION})
"""Kinds whose cap counts the exact address: they only ever go to an account's own address."""


def _minted_this_hour(view: View, kind: CodeKind, ctx: Context) -> int:
    """Codes minted this hour under the cap of a code of ``kind`` to the view's address: the
    address's own when it is its mailbox's canonical form (one address per mailbox: the one most
    owners use, which a flood of ``+tag`` variants then never prices) or when only an account's
    own address gets such codes (login, deletion; not in private mode, where the kind a request
    mints tells whether its address has an account, so a count per kind would tell it too);
    else the whole mailbox's, so aliases share one cap."""
    own = view.address_is_mailbox or (kind in _PER_ADDRESS and not ctx.rules.private_mode)
    sends = view.address_sends if own else view.code_sends
    return sum(1 for t in sends if t > ctx.now - ctx.rules.code_window_s)


def _newest(view: View, kind: CodeKind, ctx: Context, *, decoy: bool) -> CodeRow | None:
    """The address's newest code of ``kind``, if it is live: unused, unexpired, and long while
    the mailbox is being guessed at (a decoy's path also sees decoy rows; a real one never does,
    so no stranger's decoy can stand in for a real code)."""
    mine = [
        c
        for c in view.codes
        if c.address == view.address_key and c.kind is kind and (decoy or c.code_hmac != DECOY_HMAC)
    ]
    newest = max(mine, key=lambda c: (c.minted_at, c.id or 0), default=None)
    if newest is None or newest.used or newest.expires_at <= ctx.now:
        return None
    if long_codes(view, ctx) and not newest.long:
        return None  # six-digit codes no longer work: they serve nobody
    return newest


def _code_for(
    to: tuple[str, str, str],
    kind: CodeKind,
    user: UserRow | None,
    view: View,
    ctx: Context,
    *,
    shares: bool,
    domain_price: bool,
    decoy: bool = False,
    forced: bool = False,
) -> tuple[tuple[Write, ...], tuple[Mail, ...]]:
    """Join the address's live code, or mint and mail one (priced past the mailbox's cap).
    ``to``: the address (plain, for the mail), and its mailbox and address as the store keys
    them (plain, or already hashed)."""
    recipient, mailbox, address = to
    rules, now = ctx.rules, ctx.now
    newest = _newest(view, kind, ctx, decoy=decoy)
    capped = _minted_this_hour(view, kind, ctx) >= rules.max_codes_per_email_per_hour
    joins = newest is not None and (now - newest.minted_at < rules.resend_cooldown_s or capped)
    if not forced:
        price(view, ctx, domain=domain_price, mailbox=None if joins else kind)
    if joins and not forced:
        assert newest is not None and newest.id is not None
        return (RefreshCode(newest.id, now + rules.code_ttl_s),), ()
    long = long_codes(view, ctx)
    code = codes.new_code(ctx.rng, codes.LONG_DIGITS if long else codes.CODE_DIGITS)
    digest = codes.code_hmac(ctx.code_secret, kind.value, code)
    row = CodeRow(None, kind, DECOY_HMAC if decoy else digest, now, now + rules.code_ttl_s, long)
    params: tuple[tuple[str, str | int], ...] = (("code", code), ("expires_at", row.expires_at))
    writes: tuple[Write, ...] = (
        PutCode(mailbox, address, row),
        RecordCodeSend(mailbox, now, shares, address),
    )
    if decoy or user is None:  # the store's work of a real mail, withdrawn: nothing is sent
        return (*writes, DecoyWork(mailbox, _CODE_MAILS[kind], params)), ()
    return writes, (Mail(_CODE_MAILS[kind], recipient, user.id, params, ctx.lang or user.lang),)


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
    address's live code, or on a new code mailed now (see the module docstring)."""
    address = code_address(purpose, user)
    mailbox = canonical_mailbox(address)
    named_price = ctx.rules.private_mode and purpose in _NAMED
    writes, mails = _code_for(
        (address, mailbox, address),
        purpose.code_kind,
        user,
        view,
        ctx,
        shares=counts_toward_shares(purpose, user, ctx),
        domain_price=unproven(purpose, user) or named_price,
    )
    session = _new_session(
        pubkey, user.id, purpose, mailbox, address, ctx, claim=claim, epoch=user.auth_epoch
    )
    return then((None, P), Decision(Success(), (*first, PutSession(session), *writes), mails))


def _new_session(
    pubkey: str,
    user_id: str | None,
    purpose: Purpose,
    mailbox: str,
    address: str,
    ctx: Context,
    *,
    decoy: bool = False,
    claim: tuple[str, str] = ("", ""),
    epoch: int = 0,
) -> SessionRow:
    return SessionRow(
        pubkey=pubkey,
        user_id=user_id,
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
        decoy=decoy,
        claim_pubkey=claim[0],
        claim_backup=claim[1],
        auth_epoch=epoch,
        address=address,
    )


def renew(session: SessionRow, user: UserRow, view: View, ctx: Context, *, forced: bool = False) -> Decision:
    """A pending session asks for a code again, for the address it was opened for (if that is
    still where its codes go: an email change replaced since has no code to resend): the live
    code serves (and lives on), or a new one is mailed under the mailbox's rules (``forced``: an
    operator's resend, always). Its own deadline starts again; the codes before keep working.
    A resend pays the mailbox's price past its cap but no domain's (the request that opened the
    session paid that) and counts toward no share."""
    address = view.session_address or ("" if session.address else code_address(session.purpose, user))
    if not address:
        raise NoSession("This session's code address is no longer the account's: start again.")
    writes, mails = _code_for(
        (address, session.subject, session.address or address),
        session.purpose.code_kind,
        user,
        view,
        ctx,
        shares=False,
        domain_price=False,
        forced=forced,
    )
    renewed = replace(
        session,
        code_sent_at=ctx.now,
        code_expires_at=ctx.now + ctx.rules.code_ttl_s,
        updated_at=ctx.now,
        address=session.address or address,
    )
    return Decision(Success(), (PutSession(renewed), *writes), mails)


def decoy(
    pubkey: str, address: str, purpose: Purpose, view: View, ctx: Context, owner: UserRow | None = None
) -> Decision:
    """Private mode: a pending session like a real one, on codes nobody can know (so every code
    is wrong for it, and its wrong codes count as any would), minted, joined, counted and priced
    exactly as a real address's would be. ``owner`` keeps an email change's session on its
    account (a change to another account's address)."""
    mailbox = canonical_mailbox(address)
    kind = purpose.code_kind
    shares = counts_toward_shares(purpose, owner, ctx) if purpose is Purpose.EMAIL_CHANGE else True
    writes, _ = _code_for(
        (address, mailbox, address),
        kind,
        None,
        view,
        ctx,
        shares=shares,
        domain_price=True,
        decoy=True,
    )
    user_id = owner.id if owner is not None else None
    session = _new_session(pubkey, user_id, purpose, mailbox, address, ctx, decoy=True)
    return then((None, P), Decision(Success(), (PutSession(session), *writes)))


def renew_decoy(session: SessionRow, view: View, ctx: Context) -> Decision:
    """A decoy's resend: the same answer, rules and work as a real one's, and nothing sent."""
    writes, _ = _code_for(
        ("", session.subject, session.address),
        session.purpose.code_kind,
        None,
        view,
        ctx,
        shares=False,
        domain_price=False,
        decoy=True,
    )
    renewed = replace(
        session, code_sent_at=ctx.now, code_expires_at=ctx.now + ctx.rules.code_ttl_s, updated_at=ctx.now
    )
    return Decision(Success(), (PutSession(renewed), *writes))


class WrongCode(RequestError):
    """A wrong code, carrying the decision that counts it (raised out of a handler)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__()
        self.decision = decision


def redeem(
    session: SessionRow,
    user: UserRow | None,
    code: str,
    view: View,
    ctx: Context,
    *,
    sealed: bool = False,
) -> tuple[Write, ...]:
    """Check ``code`` for ``session``: the writes that spend it, or raise ``code_expired``,
    ``no_session`` (the account changed since the session began: a new address, a new backup,
    a revocation; not for a confirmation ``sealed`` by the account's key, which proves more than
    any session), a slip (``code_invalid``, not counted: a used code, or a code of the same
    mailbox for another address or step) or a :class:`WrongCode`. Compared in constant time
    each: the session's address's live codes of its kind (while the mailbox is being guessed
    at, only long ones). A decoy goes through the same steps, and nothing it holds matches."""
    if ctx.now >= session.code_expires_at:
        raise CodeExpired
    real = not session.decoy and user is not None
    if user is not None and real and not sealed and session.auth_epoch != user.auth_epoch:
        raise NoSession("The account changed since this session began: start again.")
    if (
        real
        and session.code_hmac
        and codes.same_hmac(codes.session_code_hmac(ctx.code_secret, session.pubkey, code), session.code_hmac)
    ):
        return ()  # a code of an older version, the session's own: spent with the session
    kind = session.purpose.code_kind
    long = long_codes(view, ctx)
    mine = [
        c
        for c in view.codes
        if c.address == view.address_key and c.kind is kind and c.code_hmac != DECOY_HMAC
    ]
    usable = sorted(
        (c for c in mine if not c.used and (c.long or not long)), key=lambda c: c.minted_at, reverse=True
    )[:CODES_ACCEPTED]
    submitted = codes.code_hmac(ctx.code_secret, kind.value, code)
    matched = [c for c in usable if codes.same_hmac(submitted, c.code_hmac)]
    if matched and real:
        if matched[0].expires_at <= ctx.now:
            raise CodeExpired
        assert matched[0].id is not None  # loaded codes have their row id
        return (SpendCode(matched[0].id),)
    left = ctx.rules.max_code_attempts - session.attempts
    if any(c.used and codes.same_hmac(submitted, c.code_hmac) for c in mine):
        raise CodeInvalid("That code was used already: use the newest code we sent.", attempts_left=left)
    if _slip(code, kind, view, ctx):
        raise CodeInvalid(
            "That code is for another address or another step: use the newest code of this one.",
            attempts_left=left,
        )
    raise WrongCode(wrong_code(session, user, view, ctx))


def _slip(code: str, kind: CodeKind, view: View, ctx: Context) -> bool:
    """Whether ``code`` is a live code of the same mailbox for another address or another kind
    (an owner reading the wrong mail): not a guess, so not counted."""
    others = [
        c
        for c in view.codes
        if c.code_hmac != DECOY_HMAC
        and c.expires_at > ctx.now
        and (c.address != view.address_key or c.kind is not kind)
    ]
    digests = {k: codes.code_hmac(ctx.code_secret, k.value, code) for k in {c.kind for c in others}}
    return any(codes.same_hmac(digests[c.kind], c.code_hmac) for c in others)


def wrong_code(session: SessionRow, user: UserRow | None, view: View, ctx: Context) -> Decision:
    """Count a wrong code on the session (the last allowed one locks it) and against its
    mailbox; an account's address is told when its mailbox's codes turn long."""
    attempts = session.attempts + 1
    left = ctx.rules.max_code_attempts - attempts
    writes: tuple[Write, ...] = ()
    told: tuple[Mail, ...] = ()
    if session.subject:  # a decoy's too: a mailbox turns long alike whether it has an account
        writes = (RecordCodeFailure(session.subject, ctx.now),)
    if not session.decoy and user is not None and session.subject:
        since = ctx.now - ctx.rules.code_failure_window_s
        before = sum(1 for t in view.failures if t > since)
        address = view.session_address or code_address(session.purpose, user)
        if before + 1 == ctx.rules.code_failures_free and address:
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

"""The account state machine: SIGit signup, verification, activation, login and upkeep.

One entry point, :func:`decide`: given the rows that matter (:class:`~dvm.accounts.decision.View`),
the request, ``now`` and an ``rng`` (in :class:`~dvm.accounts.table.Context`), return a
:class:`~dvm.accounts.decision.Decision`: rows to write, emails to queue and the reply. Pure: no
clock, no I/O. The rules live by domain, each method's handler declared with its rows:

* :mod:`~dvm.accounts.signup`: ``request_account``, ``activate``, ``register``;
* :mod:`~dvm.accounts.login`: ``request_login``, ``verify_code``, ``resend_code``;
* :mod:`~dvm.accounts.upkeep`: the account methods (status, email change, backup, notices,
  revocation, deletion);
* :mod:`~dvm.accounts.code_rules`: who gets a code, when one is mailed, what a guess costs;
* :mod:`~dvm.accounts.policy`: suspensions and blocks, checked before any of them;
* :mod:`~dvm.accounts.admin`: the operator's actions.

Refusals that change nothing are raised as ``RequestError`` inside and turned into a reply here.
"""

from __future__ import annotations

from dataclasses import replace

from dvm.accounts import login, signup, upkeep  # noqa: F401  (their rules fill RULES)
from dvm.accounts.admin import (
    admin_change_email,
    admin_delete,
    admin_resend_code,
    admin_restore_backup,
    admin_suspend,
    admin_unlock,
    admin_unsuspend,
)
from dvm.accounts.code_rules import WrongCode, decoy
from dvm.accounts.decision import Decision, Failure, PutSession, Transition, View, Write
from dvm.accounts.policy import check_policy
from dvm.accounts.rows import Purpose, SessionState
from dvm.accounts.table import RULES, Context, Rule
from dvm.errors import AccountSuspended, BadRequest, RequestError, UndeclaredTransition
from dvm.protocol.methods import (
    Activate,
    Register,
    Request,
    RequestAccount,
    RequestLogin,
    ResendCode,
    VerifyCode,
)

__all__ = [
    "RULES",
    "TRANSITIONS",
    "Context",
    "Rule",
    "admin_change_email",
    "admin_delete",
    "admin_resend_code",
    "admin_restore_backup",
    "admin_suspend",
    "admin_unlock",
    "admin_unsuspend",
    "decide",
]


def decide(request: Request, pubkey: str, view: View, ctx: Context) -> Decision:
    """Decide one request from ``pubkey`` (the event's key) given the loaded rows.

    The decision carries the row of the table it took. A handler that returns, or raises, an
    outcome its rows do not declare is a bug: :class:`~dvm.errors.UndeclaredTransition`.
    """
    entry = RULES.get(request.method)
    if entry is None:
        raise UndeclaredTransition(f"no rule for {request.method}")
    refused: RequestError | None = None
    if view.seal_used:
        refused = BadRequest("This seal was already carried by another request.")
    refused = refused or check_policy(request, view)
    session = view.session
    if (
        ctx.rules.private_mode
        and isinstance(refused, AccountSuspended)
        and isinstance(request, VerifyCode | ResendCode | Activate)
        and session is not None
        and session.state is SessionState.PENDING
    ):
        # A stranger's session on an account suspended since answers as a decoy's would.
        decoyed = replace(session, decoy=True, user_id=None)
        return decide(request, pubkey, replace(view, session=decoyed, session_user=None), ctx)
    if refused is not None:
        if (
            ctx.rules.private_mode
            and isinstance(refused, AccountSuspended)
            and isinstance(request, RequestAccount | Register | RequestLogin)
        ):
            # A suspended account's address answers as an unknown one would: a decoy.
            try:
                return _checked(entry, decoy(pubkey, request.email, Purpose.LOGIN, view, ctx), view, ctx)
            except RequestError as refusal:
                refused = refusal
        taken = entry.find((None, None), refused.code)
        if taken is None:
            raise UndeclaredTransition(f"{request.method} refused {refused.code} by policy: not a row")
        return Decision(Failure.of(refused), transition=taken)
    try:
        decision = entry.handler(request, pubkey, view, ctx)
    except WrongCode as wrong:
        decision = wrong.decision
    except RequestError as refusal:
        failure = Failure.of(refusal)
        taken = entry.refusal(failure.code, view)
        if taken is None:
            raise UndeclaredTransition(f"{request.method} refused {failure.code}: not a row") from refusal
        return Decision(failure, transition=taken)
    return _checked(entry, decision, view, ctx)


def _checked(entry: Rule, decision: Decision, view: View, ctx: Context) -> Decision:
    """``decision`` with its row of the table, or :class:`UndeclaredTransition`."""
    if decision.step is None:
        raise UndeclaredTransition(f"{entry.method} -> {decision.outcome} names no step")
    taken = entry.find(decision.step, decision.outcome)
    if taken is None:
        raise UndeclaredTransition(f"{entry.method} {decision.step} -> {decision.outcome}: not a row")
    kept = view.session.state if view.session is not None else None
    for write in decision.writes:
        state = write.row.state if isinstance(write, PutSession) else None
        if isinstance(write, PutSession) and state is not taken.session_to and state is not kept:
            raise UndeclaredTransition(f"{entry.method} wrote a {state} session, row says {taken}")
    writes = _keep_authorisation(decision.writes, view, ctx)
    return Decision(decision.reply, writes, decision.mails, decision.step, taken)


def _keep_authorisation(writes: tuple[Write, ...], view: View, ctx: Context) -> tuple[Write, ...]:
    """A key acting for its account by session (``auth_until``) keeps that right in the session
    it opens for the same account (an email change, a deletion): it is still the same proof."""
    old = view.session
    if old is None or view.account_via != "session":
        return writes
    return tuple(
        PutSession(replace(w.row, auth_until=old.auth_until, auth_epoch=old.auth_epoch))
        if isinstance(w, PutSession)
        and w.row.pubkey == old.pubkey
        and w.row.user_id == old.user_id
        and w.row.auth_until is None
        else w
        for w in writes
    )


TRANSITIONS: tuple[Transition, ...] = tuple(row for entry in RULES.values() for row in entry.rows)
"""Every row of every method, in the order of the rules: docs/protocol.md shows this table."""

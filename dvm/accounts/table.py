"""The transition table: each method's handler with every (session before, after, outcome) row it
may take, as data that runs (h11's ``_state.py`` style).

:func:`rule` declares a handler with its rows; :func:`dvm.accounts.machine.decide` dispatches
through ``RULES`` and refuses, as ``internal_error`` with nothing written, any outcome a handler
returns or raises that its rows do not name. docs/protocol.md shows the same table, and a test
checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dvm.accounts.decision import Decision, Step, Transition, View
from dvm.accounts.rows import SessionState
from dvm.accounts.rules import AccountRules
from dvm.nostr.keys import Rng
from dvm.protocol.methods import SEALABLE_METHODS, Method


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a decision may depend on besides rows and request: the time, randomness, the
    rules and the code secret; and what the request itself brought beyond its parameters: its
    proof of work (``pow_bits``, the target it committed to and reached; ``pow_minimum``, the
    method's announced minimum) and its language (``lang``, BCP 47 or "")."""

    now: int
    rng: Rng
    rules: AccountRules
    code_secret: bytes
    pow_bits: int = 0
    pow_minimum: int = 0
    lang: str = ""


P, V, C, L = SessionState.PENDING, SessionState.VERIFIED, SessionState.CONSUMED, SessionState.LOCKED


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a method's table (the method is added by :func:`rule`)."""

    session_from: SessionState | None
    session_to: SessionState | None
    outcome: str
    note: str


def row(session_from: SessionState | None, session_to: SessionState | None, outcome: str, note: str) -> Row:
    return Row(session_from, session_to, outcome, note)


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
        rows share the outcome, the one whose state is the key's session's state (else the one
        for any state)."""
        rows = [r for r in self.rows if r.outcome == outcome and r.session_from == r.session_to]
        if len(rows) > 1:
            state = view.session.state if view.session is not None else None
            rows = [r for r in rows if r.session_from == state] or [r for r in rows if r.session_from is None]
        return rows[0] if len(rows) == 1 else None


RULES: dict[Method, Rule] = {}
BLOCKABLE = frozenset(
    {Method.REQUEST_ACCOUNT, Method.REGISTER, Method.REQUEST_LOGIN, Method.CHANGE_EMAIL, Method.CONFIRM_EMAIL}
)
"""Methods about an address an admin may block (``dvm.accounts.policy``)."""

CODE_ROWS = (
    row(P, P, "code_invalid", "wrong code, attempts left"),
    row(P, L, "too_many_attempts", "the last allowed wrong code"),
    row(P, P, "code_expired", "the session's code deadline passed, or the code matched an expired one"),
    row(L, L, "too_many_attempts", "locked sessions take no more codes"),
)
"""The rows every method that checks a code shares (:func:`dvm.accounts.code_rules.redeem`)."""

VOIDED = row(
    P, P, "no_session", "the account moved on (address, backup, revocation); private mode: a decoy's answers"
)
"""The row of every method that uses a pending session the account has since voided
(``dvm.accounts.login``: ``verify_code``, ``resend_code``)."""

PRICED = row(
    None, None, "pow_too_low", "a code past its domain's or mailbox's hourly share costs more proof of work"
)
"""The row of every method that asks for a code to an address (:func:`~dvm.accounts.code_rules.price`)."""


def rule(method: Method, *rows: Row) -> Callable[[Handler], Handler]:
    """Declare ``method``'s handler with its rows; the policy rows (suspension, blocks, a seal
    used before) are added here, since :func:`~dvm.accounts.machine.decide` checks them first."""

    def register(handler: Handler) -> Handler:
        if method in RULES:
            raise ValueError(f"{method} has two rules")
        policy: tuple[Row, ...] = ()
        if method in SEALABLE_METHODS:
            policy += (
                row(None, None, "bad_request", "the request's seal was carried before (checked first)"),
            )
        policy += (row(None, None, "account_suspended", "an admin suspended the account (checked first)"),)
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


def then(step: Step, decision: Decision) -> Decision:
    """``decision``, taking the session from ``step[0]`` to ``step[1]``."""
    return Decision(decision.reply, decision.writes, decision.mails, step, decision.transition)

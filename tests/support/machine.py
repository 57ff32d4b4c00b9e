"""Rows, views and contexts for the pure account machine's tests (``now`` and ``rng`` injected)."""

from __future__ import annotations

import random
from dataclasses import replace

from dvm.accounts import codes
from dvm.accounts.decision import Failure, PutCode, View
from dvm.accounts.machine import Context
from dvm.accounts.rows import CodeKind, CodeRow, Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules

NOW = 1_800_000_000
SECRET = b"s" * 32
KEY = "aa" * 32  # the event's (ephemeral) pubkey
ACCOUNT = "bb" * 32
RULES = AccountRules()
CODE = "123456"


def ctx(now: int = NOW, seed: int = 1, rules: AccountRules = RULES, **more) -> Context:
    return Context(now, random.Random(seed).randbytes, rules, SECRET, **more)


def user(**changes) -> UserRow:
    base = UserRow("u1", "ana@example.org", False, False, "", "", "", NOW - 100, NOW - 100)
    return replace(base, **changes)


def active_user(**changes) -> UserRow:
    defaults = {
        "verified": True,
        "activated": True,
        "entropy": "e" * 64,
        "pubkey": ACCOUNT,
        "backup": "ncryptsec1xyz",
    }
    return user(**(defaults | changes))


def session(**changes) -> SessionRow:
    """A pending signup session of ``KEY`` on ana@example.org's codes (no code of its own)."""
    base = SessionRow(
        pubkey=KEY,
        user_id="u1",
        purpose=Purpose.SIGNUP,
        state=SessionState.PENDING,
        code_hmac="",
        code_sent_at=NOW - 100,
        code_expires_at=NOW - 100 + RULES.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=NOW - 100,
        updated_at=NOW - 100,
        subject="ana@example.org",
    )
    return replace(base, **changes)


def code_row(
    code: str = CODE, kind: CodeKind = CodeKind.SIGNUP, minted_at: int = NOW - 100, row_id: int = 1, **changes
) -> CodeRow:
    """A code mailed to the mailbox, as the store loads it."""
    row = CodeRow(
        row_id, kind, codes.code_hmac(SECRET, kind.value, code), minted_at, minted_at + RULES.code_ttl_s
    )
    return replace(row, **changes)


def pending(s: SessionRow | None = None, u: UserRow | None = None, code: str = CODE, **more) -> View:
    """A view of ``s`` (default: :func:`session`) whose address holds ``code`` of its kind (the
    store resolves the session's address; these tests key every address alike)."""
    s = s or session()
    u = u or user()
    address = u.pending_email if s.purpose is Purpose.EMAIL_CHANGE else u.email
    fields = {"session_address": address} | more
    return View(session=s, session_user=u, codes=(code_row(code, s.purpose.code_kind),), **fields)


def failure(decision) -> str:
    assert isinstance(decision.reply, Failure), decision.reply
    return decision.reply.code


def only(writes, kind):
    found = [w.row if hasattr(w, "row") else w for w in writes if isinstance(w, kind)]
    assert len(found) == 1, writes
    return found[0]


def minted(decision) -> tuple[str, CodeRow]:
    """The code a decision mailed (from its mail) and the row it stores for it."""
    (put,) = [w for w in decision.writes if isinstance(w, PutCode)]
    (mail,) = [m for m in decision.mails if "code" in m.params_dict()]
    code = str(mail.params_dict()["code"])
    assert codes.same_hmac(codes.code_hmac(SECRET, put.row.kind.value, code), put.row.code_hmac)
    return code, put.row


def stored(row: CodeRow, row_id: int = 1) -> CodeRow:
    """A minted row as the store hands it back."""
    return replace(row, id=row_id)

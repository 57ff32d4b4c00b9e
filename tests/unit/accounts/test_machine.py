"""Every transition and refusal of the account state machine, with now and rng injected."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from dvm.accounts import codes
from dvm.accounts.decision import Failure, MailKind, PutSession, PutUser, RecordCodeSend, Success, View
from dvm.accounts.machine import TRANSITIONS, Context, decide
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import error_codes
from dvm.protocol.methods import Activate, RequestAccount, RequestLogin, ResendCode, VerifyCode

NOW = 1_800_000_000
SECRET = b"s" * 32
KEY = "aa" * 32  # the event's (ephemeral) pubkey
ACCOUNT = "bb" * 32
RULES = AccountRules()


def ctx(now: int = NOW, seed: int = 1) -> Context:
    return Context(now, random.Random(seed).randbytes, RULES, SECRET)


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


def session(code: str = "123456", **changes) -> SessionRow:
    base = SessionRow(
        pubkey=KEY,
        user_id="u1",
        purpose=Purpose.SIGNUP,
        state=SessionState.PENDING,
        code_hmac=codes.code_hmac(SECRET, KEY, code),
        code_sent_at=NOW - 100,
        code_expires_at=NOW - 100 + RULES.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=NOW - 100,
        updated_at=NOW - 100,
    )
    return replace(base, **changes)


def failure(decision) -> str:
    assert isinstance(decision.reply, Failure), decision.reply
    return decision.reply.code


def only(writes, kind):
    found = [w.row if hasattr(w, "row") else w for w in writes if isinstance(w, kind)]
    assert len(found) == 1, writes
    return found[0]


# --- request_account ---------------------------------------------------------------------------


def test_new_email_creates_unverified_user_pending_session_and_one_code_email():
    decision = decide(RequestAccount("ana@example.org"), KEY, View(), ctx())
    assert decision.reply == Success(None)
    new_user = only(decision.writes, PutUser)
    assert (new_user.email, new_user.verified, new_user.activated, new_user.entropy) == (
        "ana@example.org",
        False,
        False,
        "",
    )
    new_session = only(decision.writes, PutSession)
    assert (new_session.pubkey, new_session.user_id, new_session.state) == (
        KEY,
        new_user.id,
        SessionState.PENDING,
    )
    assert new_session.code_expires_at == NOW + RULES.code_ttl_s
    assert only(decision.writes, RecordCodeSend).mailbox == "ana@example.org"
    (mail,) = decision.mails
    assert (mail.kind, mail.to) == (MailKind.SIGNUP_CODE, "ana@example.org")
    code = mail.params_dict()["code"]
    assert isinstance(code, str) and len(code) == 6 and code.isdigit()
    assert codes.code_matches(SECRET, KEY, code, new_session.code_hmac)
    assert new_session.code_hmac != code


def test_activated_email_answers_email_taken_and_changes_nothing():
    decision = decide(RequestAccount("ana@example.org"), KEY, View(email_user=active_user()), ctx())
    assert failure(decision) == "email_taken"
    assert decision.writes == () and decision.mails == ()


def test_unfinished_signup_gets_a_new_session_for_the_same_user():
    decision = decide(
        RequestAccount("ana@example.org"), "cc" * 32, View(email_user=user(verified=True)), ctx()
    )
    assert not any(isinstance(w, PutUser) for w in decision.writes)
    assert only(decision.writes, PutSession).user_id == "u1"
    assert len(decision.mails) == 1


def test_second_request_from_the_same_key_is_idempotent():
    view = View(session=session(), session_user=user(), email_user=user())
    decision = decide(RequestAccount("ana@example.org"), KEY, view, ctx())
    assert decision.reply == Success(None)
    assert decision.writes == () and decision.mails == ()


def test_hourly_code_cap_refuses_with_retry_after():
    sends = tuple(NOW - 3000 + i for i in range(RULES.max_codes_per_email_per_hour))
    decision = decide(
        RequestAccount("ana@example.org"), "cc" * 32, View(email_user=user(), code_sends=sends), ctx()
    )
    assert failure(decision) == "rate_limited"
    assert dict(decision.reply.details)["retry_after_s"] == NOW - 3000 + 3600 - NOW
    assert decision.writes == ()


def test_sends_older_than_the_window_do_not_count():
    sends = tuple(NOW - 4000 for _ in range(10))
    decision = decide(
        RequestAccount("ana@example.org"), "cc" * 32, View(email_user=user(), code_sends=sends), ctx()
    )
    assert decision.reply == Success(None)


# --- verify_code -------------------------------------------------------------------------------


def test_right_signup_code_verifies_user_and_returns_fresh_entropy():
    view = View(session=session(), session_user=user())
    decision = decide(VerifyCode("123456"), KEY, view, ctx())
    entropy = decision.reply.data["entropy"]
    assert len(entropy) == 64 and int(entropy, 16) >= 0
    assert only(decision.writes, PutUser).verified is True
    assert only(decision.writes, PutUser).entropy == entropy
    verified = only(decision.writes, PutSession)
    assert (verified.state, verified.code_hmac, verified.verified_at) == (SessionState.VERIFIED, "", NOW)
    assert decision.mails == ()


def test_entropy_is_drawn_once_per_user():
    view = View(session=session(), session_user=user(verified=True, entropy="f" * 64))
    assert decide(VerifyCode("123456"), KEY, view, ctx()).reply.data == {"entropy": "f" * 64}


def test_wrong_codes_count_then_lock_the_session():
    current = session()
    for attempt in range(1, RULES.max_code_attempts):
        decision = decide(VerifyCode("000000"), KEY, View(session=current, session_user=user()), ctx())
        assert failure(decision) == "code_invalid"
        assert dict(decision.reply.details) == {"attempts_left": RULES.max_code_attempts - attempt}
        current = only(decision.writes, PutSession)
        assert current.attempts == attempt
    decision = decide(VerifyCode("000000"), KEY, View(session=current, session_user=user()), ctx())
    assert failure(decision) == "too_many_attempts"
    locked = only(decision.writes, PutSession)
    assert locked.state is SessionState.LOCKED and locked.code_hmac == ""
    # Even the right code no longer works.
    decision = decide(VerifyCode("123456"), KEY, View(session=locked, session_user=user()), ctx())
    assert failure(decision) == "too_many_attempts" and decision.writes == ()


def test_expired_code_is_refused_even_when_right():
    view = View(session=session(code_expires_at=NOW), session_user=user())
    decision = decide(VerifyCode("123456"), KEY, view, ctx())
    assert failure(decision) == "code_expired" and decision.writes == ()


def test_a_code_works_once():
    view = View(
        session=session(state=SessionState.VERIFIED, code_hmac="", verified_at=NOW), session_user=user()
    )
    decision = decide(VerifyCode("123456"), KEY, view, ctx())
    assert failure(decision) == "code_invalid" and decision.writes == ()


@pytest.mark.parametrize(
    "view",
    [View(), View(session=session(state=SessionState.CONSUMED), session_user=user())],
    ids=["none", "used"],
)
def test_verify_without_a_live_session_is_no_session(view):
    assert failure(decide(VerifyCode("123456"), KEY, view, ctx())) == "no_session"


def test_code_from_another_session_does_not_match():
    # The same digits HMAC'd for another key are a different stored value.
    other = session(code_hmac=codes.code_hmac(SECRET, "cc" * 32, "123456"))
    assert failure(decide(VerifyCode("123456"), KEY, View(session=other, session_user=user()), ctx())) == (
        "code_invalid"
    )


def test_signup_code_after_activation_elsewhere_sends_to_login():
    decision = decide(VerifyCode("123456"), KEY, View(session=session(), session_user=active_user()), ctx())
    assert failure(decision) == "email_taken" and decision.writes == ()


@pytest.mark.parametrize("state", [SessionState.PENDING, SessionState.VERIFIED])
def test_activation_from_another_session_of_an_activated_account_sends_to_login(state):
    # Even with the very pubkey and backup the account holds: only the activating session gets ok.
    view = View(session=session(state=state, verified_at=NOW), session_user=active_user())
    decision = decide(Activate(ACCOUNT, "ncryptsec1xyz"), KEY, view, ctx())
    assert failure(decision) == "email_taken" and decision.writes == ()


# --- activate ----------------------------------------------------------------------------------


def verified_view(**changes) -> View:
    s = session(state=SessionState.VERIFIED, code_hmac="", verified_at=NOW - 10)
    return View(session=s, session_user=user(verified=True, entropy="e" * 64), **changes)


def test_activation_stores_pubkey_and_backup_and_consumes_the_session():
    decision = decide(Activate(ACCOUNT, "ncryptsec1abc"), KEY, verified_view(), ctx())
    assert decision.reply == Success(None)
    activated = only(decision.writes, PutUser)
    assert (activated.activated, activated.verified, activated.pubkey, activated.backup) == (
        True,
        True,
        ACCOUNT,
        "ncryptsec1abc",
    )
    assert only(decision.writes, PutSession).state is SessionState.CONSUMED
    assert [m.kind for m in decision.mails] == [MailKind.WELCOME]


def test_activation_before_verification_is_refused():
    view = View(session=session(), session_user=user())
    assert failure(decide(Activate(ACCOUNT, "x"), KEY, view, ctx())) == "not_verified"


def test_activation_after_the_window_is_refused():
    late = ctx(NOW - 10 + RULES.activation_window_s)
    assert failure(decide(Activate(ACCOUNT, "x"), KEY, verified_view(), late)) == "session_expired"


def test_activation_with_a_pubkey_of_another_account_is_refused():
    other = active_user(id="u2", email="bo@example.org")
    decision = decide(Activate(ACCOUNT, "x"), KEY, verified_view(pubkey_user=other), ctx())
    assert failure(decision) == "pubkey_taken" and decision.writes == ()


def test_activation_repeated_with_same_values_is_a_no_op_and_different_values_refused():
    done = View(session=session(state=SessionState.CONSUMED), session_user=active_user())
    same = decide(Activate(ACCOUNT, "ncryptsec1xyz"), KEY, done, ctx())
    assert same.reply == Success(None) and same.writes == () and same.mails == ()
    assert failure(decide(Activate("dd" * 32, "ncryptsec1xyz"), KEY, done, ctx())) == "already_activated"


def test_activation_from_a_login_session_or_locked_session_is_refused():
    login = View(session=session(purpose=Purpose.LOGIN, state=SessionState.VERIFIED), session_user=user())
    assert failure(decide(Activate(ACCOUNT, "x"), KEY, login, ctx())) == "no_session"
    locked = View(session=session(state=SessionState.LOCKED), session_user=user())
    assert failure(decide(Activate(ACCOUNT, "x"), KEY, locked, ctx())) == "too_many_attempts"
    assert failure(decide(Activate(ACCOUNT, "x"), KEY, View(), ctx())) == "no_session"


# --- login -------------------------------------------------------------------------------------


def test_login_for_unknown_or_unfinished_email_is_refused():
    assert failure(decide(RequestLogin("x@example.org"), KEY, View(), ctx())) == "unknown_email"
    view = View(email_user=user(verified=True))
    assert failure(decide(RequestLogin("ana@example.org"), KEY, view, ctx())) == "not_activated"


def test_login_opens_a_login_session_and_emails_a_login_code():
    decision = decide(RequestLogin("ana@example.org"), KEY, View(email_user=active_user()), ctx())
    new_session = only(decision.writes, PutSession)
    assert (new_session.purpose, new_session.state) == (Purpose.LOGIN, SessionState.PENDING)
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_CODE]


def test_right_login_code_returns_entropy_pubkey_and_backup_once():
    view = View(session=session(purpose=Purpose.LOGIN), session_user=active_user())
    decision = decide(VerifyCode("123456"), KEY, view, ctx())
    assert decision.reply.data == {"entropy": "e" * 64, "pubkey": ACCOUNT, "backup": "ncryptsec1xyz"}
    assert only(decision.writes, PutSession).state is SessionState.CONSUMED
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_NOTICE]
    spent = View(session=only(decision.writes, PutSession), session_user=active_user())
    assert failure(decide(VerifyCode("123456"), KEY, spent, ctx())) == "no_session"


# --- resend_code -------------------------------------------------------------------------------


def test_resend_within_cooldown_is_rate_limited_with_retry_after():
    view = View(session=session(code_sent_at=NOW - 20), session_user=user())
    decision = decide(ResendCode(), KEY, view, ctx())
    assert failure(decision) == "rate_limited"
    assert dict(decision.reply.details) == {"retry_after_s": RULES.resend_cooldown_s - 20}


def test_resend_replaces_the_code_and_voids_the_old_one():
    view = View(session=session(), session_user=user())
    decision = decide(ResendCode(), KEY, view, ctx())
    renewed = only(decision.writes, PutSession)
    new_code = decision.mails[0].params_dict()["code"]
    assert codes.code_matches(SECRET, KEY, str(new_code), renewed.code_hmac)
    assert not codes.code_matches(SECRET, KEY, "123456", renewed.code_hmac) or new_code == "123456"
    assert renewed.code_expires_at == NOW + RULES.code_ttl_s
    assert only(decision.writes, RecordCodeSend).at == NOW


def test_resend_needs_a_pending_session():
    verified = View(session=session(state=SessionState.VERIFIED), session_user=user())
    assert failure(decide(ResendCode(), KEY, verified, ctx())) == "no_session"
    assert failure(decide(ResendCode(), KEY, View(), ctx())) == "no_session"


# --- codes and the table -----------------------------------------------------------------------


def test_codes_are_six_digits_and_rejection_sampled():
    draws = iter([b"\xff\xff\xff\xff", (123).to_bytes(4, "big")])
    assert codes.new_code(lambda n: next(draws)) == "000123"
    rng = random.Random(7).randbytes
    assert all(len(c) == 6 and c.isdigit() for c in (codes.new_code(rng) for _ in range(500)))


def test_transition_table_names_only_known_outcomes_and_methods():
    known = set(error_codes()) | {"ok"}
    from dvm.protocol.methods import Method

    for row in TRANSITIONS:
        assert row.outcome in known, row
        assert row.method in {m.value for m in Method}, row


# --- the table is the code that runs -----------------------------------------------------------


def test_every_method_is_dispatched_through_a_rule_with_rows():
    from dvm.accounts.machine import RULES
    from dvm.protocol.methods import Method

    assert set(RULES) == set(Method)
    for method, entry in RULES.items():
        assert entry.rows and all(row.method == method for row in entry.rows)
        steps = [(r.session_from, r.session_to, r.outcome) for r in entry.rows]
        assert len(steps) == len(set(steps)), f"{method} declares a row twice"


def test_a_decision_carries_the_row_it_took():
    pending = View(session=session(), session_user=user())
    decision = decide(VerifyCode("123456"), KEY, pending, ctx())
    assert decision.transition in TRANSITIONS
    t = decision.transition
    assert (t.method, t.session_from, t.session_to, t.outcome) == (
        "verify_code",
        SessionState.PENDING,
        SessionState.VERIFIED,
        "ok",
    )
    refused = decide(VerifyCode("123456"), KEY, View(), ctx())
    assert refused.transition is not None and refused.transition.outcome == "no_session"


def test_an_outcome_the_rows_do_not_name_is_refused_as_internal_error(monkeypatch):
    """A handler changed without its rows (or rows without the docs) cannot slip through."""
    from dvm.accounts.machine import RULES, Rule
    from dvm.errors import EmailTaken, UndeclaredTransition
    from dvm.protocol.methods import Method, Status

    status = RULES[Method.STATUS]

    def refuses_something_new(request, pubkey, view, ctx):
        raise EmailTaken

    def returns_a_new_step(request, pubkey, view, ctx):
        return replace(status.handler(request, pubkey, view, ctx), step=(SessionState.PENDING, None))

    active = View(account_user=active_user())
    for handler in (refuses_something_new, returns_a_new_step):
        monkeypatch.setitem(RULES, Method.STATUS, Rule(Method.STATUS, handler, status.rows))
        with pytest.raises(UndeclaredTransition) as refused:
            decide(Status(), ACCOUNT, active, ctx())
        assert refused.value.code == "internal_error"

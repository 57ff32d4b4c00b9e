"""Every transition and refusal of the account state machine, with now and rng injected."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from dvm.accounts import codes
from dvm.accounts.decision import (
    MailKind,
    PutCode,
    PutSession,
    PutUser,
    RecordCodeSend,
    RefreshCode,
    SpendCode,
    Success,
    View,
)
from dvm.accounts.machine import TRANSITIONS, decide
from dvm.accounts.rows import CodeKind, Purpose, SessionState
from dvm.errors import error_codes
from dvm.protocol.methods import Activate, RequestAccount, RequestLogin, ResendCode, VerifyCode
from tests.support.machine import (
    ACCOUNT,
    CODE,
    KEY,
    NOW,
    RULES,
    SECRET,
    active_user,
    code_row,
    ctx,
    failure,
    minted,
    only,
    pending,
    session,
    user,
)

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
    assert (new_session.subject, new_session.code_hmac) == ("ana@example.org", "")
    assert only(decision.writes, RecordCodeSend).mailbox == "ana@example.org"
    (mail,) = decision.mails
    assert (mail.kind, mail.to) == (MailKind.SIGNUP_CODE, "ana@example.org")
    code, row = minted(decision)
    assert len(code) == 6 and code.isdigit() and row.code_hmac != code
    assert (row.kind, row.minted_at, row.expires_at, row.long) == (
        CodeKind.SIGNUP,
        NOW,
        NOW + RULES.code_ttl_s,
        False,
    )
    assert [w.mailbox for w in decision.writes if isinstance(w, PutCode)] == ["ana@example.org"]


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


def test_past_the_mailboxs_hourly_cap_a_new_session_joins_the_live_code_and_nothing_is_mailed():
    sends = tuple(NOW - 3000 + i for i in range(RULES.max_codes_per_email_per_hour))
    live = code_row(minted_at=NOW - 600)
    view = View(email_user=user(), code_sends=sends, codes=(live,))
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx())
    assert decision.reply == Success(None) and decision.mails == ()
    joined = only(decision.writes, PutSession)
    assert (joined.pubkey, joined.state, joined.subject) == (
        "cc" * 32,
        SessionState.PENDING,
        "ana@example.org",
    )
    assert not any(isinstance(w, PutCode | RecordCodeSend) for w in decision.writes)
    # The owner's session redeems the code a stranger's request had mailed.
    owner = pending(joined, code=CODE)
    assert decide(VerifyCode(CODE), "cc" * 32, replace(owner, codes=(live,)), ctx()).reply.data is not None


def test_a_code_younger_than_the_cooldown_is_shared_even_under_the_cap():
    view = View(email_user=user(), codes=(code_row(minted_at=NOW - 10),))
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx())
    assert decision.reply == Success(None) and decision.mails == ()


def test_with_no_live_code_past_the_cap_a_new_code_costs_a_bit_more_and_is_never_refused():
    sends = tuple(NOW - 3000 + i for i in range(RULES.max_codes_per_email_per_hour))
    old = code_row(minted_at=NOW - RULES.code_ttl_s - 1)
    view = View(email_user=user(), code_sends=sends, codes=(old,))
    priced = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx(pow_minimum=16, pow_bits=16))
    assert failure(priced) == "pow_too_low" and dict(priced.reply.details) == {"required_bits": 17}
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx(pow_minimum=16, pow_bits=17))
    assert decision.reply == Success(None)
    minted(decision)


def test_joining_a_code_gives_it_a_new_lifetime():
    sends = tuple(NOW - 3000 + i for i in range(RULES.max_codes_per_email_per_hour))
    dying = code_row(minted_at=NOW - RULES.code_ttl_s + 20)
    view = View(email_user=user(), code_sends=sends, codes=(dying,))
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx())
    assert decision.reply == Success(None) and decision.mails == ()
    assert only(decision.writes, RefreshCode) == RefreshCode(1, NOW + RULES.code_ttl_s)


def test_sends_older_than_the_window_do_not_count():
    sends = tuple(NOW - 4000 for _ in range(10))
    view = View(email_user=user(), code_sends=sends, codes=(code_row(minted_at=NOW - 120),))
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, view, ctx())
    assert decision.reply == Success(None)
    minted(decision)  # the live code is past the cooldown and the mailbox under its cap


# --- verify_code -------------------------------------------------------------------------------


def test_right_signup_code_verifies_user_and_returns_fresh_entropy():
    decision = decide(VerifyCode(CODE), KEY, pending(), ctx())
    entropy = decision.reply.data["entropy"]
    assert len(entropy) == 64 and int(entropy, 16) >= 0
    assert only(decision.writes, PutUser).verified is True
    assert only(decision.writes, PutUser).entropy == entropy
    verified = only(decision.writes, PutSession)
    assert (verified.state, verified.code_hmac, verified.verified_at) == (SessionState.VERIFIED, "", NOW)
    assert only(decision.writes, SpendCode).code_id == 1  # a code works once, for any session
    assert decision.mails == ()


def test_every_live_code_of_the_address_works_the_newest_five_at_most():
    rows = tuple(code_row(f"{n:06d}", minted_at=NOW - 500 + n, row_id=n) for n in range(1, 7))
    view = replace(pending(), codes=rows)
    for n in range(2, 7):  # a stranger's later codes never push the owner's out
        assert decide(VerifyCode(f"{n:06d}"), KEY, view, ctx()).reply.data is not None
    assert failure(decide(VerifyCode("000001"), KEY, view, ctx())) == "code_invalid"  # a sixth


def test_a_code_mailed_to_another_address_of_the_mailbox_is_a_slip_never_a_way_in():
    elsewhere = code_row(address="other-address-key")
    view = replace(pending(), codes=(elsewhere,), address_key="this-address-key")
    decision = decide(VerifyCode(CODE), KEY, view, ctx())
    assert failure(decision) == "code_invalid" and decision.writes == ()  # not counted either


def test_a_code_of_another_kind_does_not_match():
    view = View(session=session(), session_user=user(), codes=(code_row(kind=CodeKind.LOGIN),))
    assert failure(decide(VerifyCode(CODE), KEY, view, ctx())) == "code_invalid"


def test_a_code_of_an_older_version_still_works_for_its_own_session():
    own = session(code_hmac=codes.session_code_hmac(SECRET, KEY, "654321"))
    decision = decide(VerifyCode("654321"), KEY, View(session=own, session_user=user()), ctx())
    assert only(decision.writes, PutSession).state is SessionState.VERIFIED


def test_entropy_is_drawn_once_per_user():
    view = pending(u=user(verified=True, entropy="f" * 64))
    assert decide(VerifyCode(CODE), KEY, view, ctx()).reply.data == {"entropy": "f" * 64}


def test_wrong_codes_count_then_lock_the_session():
    current = session()
    for attempt in range(1, RULES.max_code_attempts):
        decision = decide(VerifyCode("000000"), KEY, pending(current), ctx())
        assert failure(decision) == "code_invalid"
        assert dict(decision.reply.details) == {"attempts_left": RULES.max_code_attempts - attempt}
        current = only(decision.writes, PutSession)
        assert current.attempts == attempt
    decision = decide(VerifyCode("000000"), KEY, pending(current), ctx())
    assert failure(decision) == "too_many_attempts"
    locked = only(decision.writes, PutSession)
    assert locked.state is SessionState.LOCKED and locked.code_hmac == ""
    # Even the right code no longer works.
    decision = decide(VerifyCode(CODE), KEY, pending(locked), ctx())
    assert failure(decision) == "too_many_attempts" and decision.writes == ()


def test_expired_code_is_refused_even_when_right():
    view = pending(session(code_expires_at=NOW))
    decision = decide(VerifyCode(CODE), KEY, view, ctx())
    assert failure(decision) == "code_expired" and decision.writes == ()
    # A session still within its own deadline is told the same when the code it types has expired.
    old = replace(pending(), codes=(code_row(minted_at=NOW - RULES.code_ttl_s),))
    assert failure(decide(VerifyCode(CODE), KEY, old, ctx())) == "code_expired"


def test_a_code_works_once():
    view = View(session=session(state=SessionState.VERIFIED, verified_at=NOW), session_user=user())
    decision = decide(VerifyCode(CODE), KEY, view, ctx())
    assert failure(decision) == "code_invalid" and decision.writes == ()
    spent = replace(pending(), codes=(code_row(code_hmac=""),))
    assert failure(decide(VerifyCode(CODE), KEY, spent, ctx())) == "code_invalid"


@pytest.mark.parametrize(
    "view",
    [View(), View(session=session(state=SessionState.CONSUMED), session_user=user())],
    ids=["none", "used"],
)
def test_verify_without_a_live_session_is_no_session(view):
    assert failure(decide(VerifyCode("123456"), KEY, view, ctx())) == "no_session"


def test_signup_code_after_activation_elsewhere_sends_to_login():
    decision = decide(VerifyCode(CODE), KEY, pending(u=active_user()), ctx())
    assert failure(decision) == "email_taken" and decision.writes == ()


@pytest.mark.parametrize("state", [SessionState.PENDING, SessionState.VERIFIED])
def test_activation_from_another_session_of_an_activated_account_sends_to_login(state):
    # Even with the very pubkey and backup the account holds: only the activating session gets ok.
    view = View(session=session(state=state, verified_at=NOW), session_user=active_user())
    decision = decide(Activate(ACCOUNT, "ncryptsec1xyz"), KEY, view, ctx())
    assert failure(decision) == "email_taken" and decision.writes == ()


# --- activate ----------------------------------------------------------------------------------


def verified_view(**changes) -> View:
    s = session(state=SessionState.VERIFIED, verified_at=NOW - 10)
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
    view = pending(session(purpose=Purpose.LOGIN), active_user())
    decision = decide(VerifyCode(CODE), KEY, view, ctx())
    assert decision.reply.data == {"entropy": "e" * 64, "pubkey": ACCOUNT, "backup": "ncryptsec1xyz"}
    assert only(decision.writes, PutSession).state is SessionState.CONSUMED
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_NOTICE]
    spent = View(session=only(decision.writes, PutSession), session_user=active_user())
    assert failure(decide(VerifyCode(CODE), KEY, spent, ctx())) == "no_session"


# --- resend_code -------------------------------------------------------------------------------


def test_resend_within_cooldown_is_rate_limited_with_retry_after():
    view = View(session=session(code_sent_at=NOW - 20), session_user=user())
    decision = decide(ResendCode(), KEY, view, ctx())
    assert failure(decision) == "rate_limited"
    assert dict(decision.reply.details) == {"retry_after_s": RULES.resend_cooldown_s - 20}


def test_resend_mails_a_new_code_and_the_older_one_keeps_working():
    view = pending()
    decision = decide(ResendCode(), KEY, view, ctx())
    renewed = only(decision.writes, PutSession)
    new_code, row = minted(decision)
    assert renewed.code_expires_at == NOW + RULES.code_ttl_s and renewed.code_sent_at == NOW
    assert only(decision.writes, RecordCodeSend).at == NOW
    both = replace(view, session=renewed, codes=(replace(row, id=2), *view.codes))
    for code in (new_code, CODE):
        assert decide(VerifyCode(code), KEY, both, ctx()).reply.data is not None


def test_resend_past_the_cap_renews_the_session_on_the_live_code_without_mail():
    sends = tuple(NOW - 3000 + i for i in range(RULES.max_codes_per_email_per_hour))
    view = replace(pending(), code_sends=sends)
    decision = decide(ResendCode(), KEY, view, ctx())
    assert decision.reply == Success(None) and decision.mails == ()
    assert only(decision.writes, PutSession).code_expires_at == NOW + RULES.code_ttl_s


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
    assert all(len(c) == 16 and c.isdigit() for c in (codes.new_code(rng, 16) for _ in range(50)))


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
    decision = decide(VerifyCode(CODE), KEY, pending(), ctx())
    assert decision.transition in TRANSITIONS
    t = decision.transition
    assert (t.method, t.session_from, t.session_to, t.outcome) == (
        "verify_code",
        SessionState.PENDING,
        SessionState.VERIFIED,
        "ok",
    )
    refused = decide(VerifyCode(CODE), KEY, View(), ctx())
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

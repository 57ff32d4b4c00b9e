"""SIGit's one-event signup (``register``): the rows of its table, and the login it leads to."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from dvm.accounts import codes
from dvm.accounts.decision import DeleteUser, Failure, MailKind, PutSession, PutUser, Success, View
from dvm.accounts.machine import TRANSITIONS, Context, decide
from dvm.accounts.rows import Purpose, SessionRow, SessionState, UserRow
from dvm.accounts.rules import AccountRules
from dvm.errors import BadRequest, InvalidEmail
from dvm.nostr.keys import SecretKey
from dvm.protocol.methods import Activate, Register, RequestAccount, ResendCode, VerifyCode, decode_request

NOW = 1_800_000_000
SECRET = b"s" * 32
KEY = "aa" * 32  # the browser's ephemeral key
ACCOUNT = "bb" * 32  # the user's real key, sent in the params
BACKUP = "ncryptsec1xyz"
RULES = AccountRules()
PRIVATE = replace(RULES, private_mode=True)


def ctx(now: int = NOW, rules: AccountRules = RULES) -> Context:
    return Context(now, random.Random(1).randbytes, rules, SECRET)


def register(email: str = "ana@example.org", pubkey: str = ACCOUNT, backup: str = BACKUP) -> Register:
    return Register(pubkey, email, backup)


def entry(**changes) -> UserRow:
    """An unfinished register entry: key and backup stored, never verified."""
    base = UserRow("u1", "ana@example.org", False, False, "", ACCOUNT, BACKUP, NOW - 100, NOW - 100)
    return replace(base, **changes)


def active(**changes) -> UserRow:
    return entry(**({"verified": True, "activated": True, "last_seen": NOW - 50} | changes))


def session(code: str = "123456", **changes) -> SessionRow:
    base = SessionRow(
        pubkey=KEY,
        user_id="u1",
        purpose=Purpose.REGISTER,
        state=SessionState.PENDING,
        code_hmac=codes.code_hmac(SECRET, KEY, code),
        code_sent_at=NOW - 100,
        code_expires_at=NOW - 100 + RULES.code_ttl_s,
        attempts=0,
        verified_at=None,
        created_at=NOW - 100,
        updated_at=NOW - 100,
        subject="ana@example.org",
    )
    return replace(base, **changes)


def outcome(decision) -> str:
    return decision.outcome


def rows_of(decision, kind):
    return [w.row if hasattr(w, "row") else w for w in decision.writes if isinstance(w, kind)]


# --- the request ---------------------------------------------------------------------------------


def test_register_params_are_validated_like_request_account_and_activate():
    real = SecretKey.generate().pubkey_hex
    body = '{"method": "register", "params": {"pubkey": "%s", "email": " Ana@Example.ORG ", "backup": "%s"}}'
    request = decode_request(body % (real, "QUJD"))
    assert request == Register(real, "ana@example.org", "QUJD")
    with pytest.raises(BadRequest):
        decode_request(body % (ACCOUNT, "QUJD"))  # not a point on the curve
    with pytest.raises(BadRequest):
        decode_request(body % (real, "not base64!"))
    with pytest.raises(InvalidEmail):
        decode_request(body.replace(" Ana@Example.ORG ", "nobody") % (real, "QUJD"))
    with pytest.raises(BadRequest):
        decode_request('{"method": "register", "params": {"email": "ana@example.org"}}')


# --- register ------------------------------------------------------------------------------------


def test_new_email_stores_key_and_backup_unactivated_and_mails_a_signup_code():
    decision = decide(register(), KEY, View(), ctx())
    assert decision.reply == Success(None)
    (user,) = rows_of(decision, PutUser)
    assert (user.email, user.pubkey, user.backup, user.entropy) == ("ana@example.org", ACCOUNT, BACKUP, "")
    assert (user.verified, user.activated, user.last_seen) == (False, False, None)
    (new,) = rows_of(decision, PutSession)
    assert (new.pubkey, new.user_id, new.purpose, new.state) == (
        KEY,
        user.id,
        Purpose.REGISTER,
        SessionState.PENDING,
    )
    (mail,) = decision.mails
    assert (mail.kind, mail.to) == (MailKind.SIGNUP_CODE, "ana@example.org")
    assert codes.code_matches(SECRET, KEY, str(mail.params_dict()["code"]), new.code_hmac)
    t = decision.transition
    assert t is not None and (t.method, t.session_from, t.session_to, t.outcome) == (
        "register",
        None,
        SessionState.PENDING,
        "ok",
    )


def test_an_address_with_last_seen_set_answers_email_taken_and_changes_nothing():
    decision = decide(register(), "cc" * 32, View(email_user=active()), ctx())
    assert outcome(decision) == "email_taken"
    assert decision.writes == () and decision.mails == ()


@pytest.mark.parametrize(
    "unfinished",
    [entry(), entry(verified=True, entropy="e" * 64, pubkey="", backup="")],
    ids=["register entry", "seed signup verified, never activated"],
)
def test_an_entry_never_finished_is_erased_and_signup_starts_again(unfinished):
    other_key = "dd" * 32
    new_pubkey = "ee" * 32
    decision = decide(register(pubkey=new_pubkey), "cc" * 32, View(email_user=unfinished), ctx())
    assert decision.outcome == "ok"
    assert rows_of(decision, DeleteUser)[0].user_id == "u1"
    (user,) = rows_of(decision, PutUser)
    assert user.id != "u1" and user.pubkey == new_pubkey and not user.verified
    assert next(w for w in decision.writes if isinstance(w, DeleteUser | PutUser)) == DeleteUser(
        "u1", NOW, "a new signup"
    )  # the old entry goes first: its address is free for the new one
    assert other_key not in {s.pubkey for s in rows_of(decision, PutSession)}
    assert len(decision.mails) == 1


def test_the_same_request_again_while_pending_is_a_no_op():
    view = View(session=session(), session_user=entry(), email_user=entry())
    decision = decide(register(), KEY, view, ctx())
    assert decision.reply == Success(None)
    assert decision.writes == () and decision.mails == ()
    assert decision.transition is not None and decision.transition.session_from is SessionState.PENDING


def test_the_same_key_with_another_backup_starts_again():
    view = View(session=session(), session_user=entry(), email_user=entry())
    decision = decide(register(backup="QUJD"), KEY, view, ctx())
    assert rows_of(decision, DeleteUser) and rows_of(decision, PutUser)[0].backup == "QUJD"


def test_a_pubkey_of_another_activated_account_is_refused():
    other = active(id="u2", email="bob@example.org")
    decision = decide(register(), KEY, View(pubkey_user=other), ctx())
    assert outcome(decision) == "pubkey_taken"
    assert decision.writes == ()


def test_a_pubkey_held_by_another_unfinished_entry_frees_it():
    other = entry(id="u2", email="bob@example.org")
    decision = decide(register(), KEY, View(pubkey_user=other), ctx())
    assert decision.outcome == "ok"
    assert [d.user_id for d in rows_of(decision, DeleteUser)] == ["u2"]


def test_the_code_caps_apply_as_to_every_method():
    view = View(code_sends=tuple(NOW - i for i in range(RULES.max_codes_per_email_per_hour)))
    decision = decide(register(), KEY, view, ctx())
    assert outcome(decision) == "rate_limited"
    assert decision.writes == ()


def test_private_mode_answers_ok_for_an_activated_address_and_mails_its_owner_a_login_code():
    decision = decide(register(), KEY, View(email_user=active()), ctx(rules=PRIVATE))
    assert decision.reply == Success(None)
    (new,) = rows_of(decision, PutSession)
    assert (new.purpose, new.user_id) == (Purpose.LOGIN, "u1")
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_CODE]
    assert not rows_of(decision, PutUser)


def test_blocked_and_suspended_are_checked_first():
    assert outcome(decide(register(), KEY, View(email_blocked=True), ctx())) == "email_blocked"
    suspended = entry(suspended_at=NOW - 5)
    assert outcome(decide(register(), KEY, View(email_user=suspended), ctx())) == "account_suspended"


# --- verify_code, resend_code and activate on a register session ------------------------------


def test_the_right_code_activates_the_account_and_answers_an_empty_object():
    view = View(session=session(), session_user=entry())
    decision = decide(VerifyCode("123456"), KEY, view, ctx())
    assert decision.reply == Success(None)
    (user,) = rows_of(decision, PutUser)
    assert (user.verified, user.activated, user.last_seen, user.entropy) == (True, True, NOW, "")
    (spent,) = rows_of(decision, PutSession)
    assert (spent.state, spent.code_hmac) == (SessionState.CONSUMED, "")
    assert [m.kind for m in decision.mails] == [MailKind.WELCOME]
    assert decision.transition in TRANSITIONS


def test_a_wrong_code_counts_like_any_other():
    view = View(session=session(), session_user=entry())
    decision = decide(VerifyCode("654321"), KEY, view, ctx())
    assert isinstance(decision.reply, Failure) and decision.reply.code == "code_invalid"
    assert not rows_of(decision, PutUser)


def test_the_code_after_another_session_activated_the_address_answers_email_taken():
    view = View(session=session(), session_user=active())
    assert outcome(decide(VerifyCode("123456"), KEY, view, ctx())) == "email_taken"


def test_a_finished_register_session_takes_no_code_and_cannot_activate():
    done = View(session=session(state=SessionState.CONSUMED, code_hmac=""), session_user=active())
    assert outcome(decide(VerifyCode("123456"), KEY, done, ctx())) == "no_session"
    assert outcome(decide(Activate(ACCOUNT, BACKUP), KEY, done, ctx())) == "no_session"


def test_resend_code_mails_a_new_signup_code():
    view = View(session=session(code_sent_at=NOW - 120), session_user=entry())
    decision = decide(ResendCode(), KEY, view, ctx())
    assert [m.kind for m in decision.mails] == [MailKind.SIGNUP_CODE]


def test_a_seed_signup_code_on_a_register_entry_does_not_activate_its_key():
    """request_account on an unfinished register entry is the seed flow: its code verifies and
    hands out entropy; the entry's key is not activated by it."""
    seed = session(purpose=Purpose.SIGNUP)
    decision = decide(VerifyCode("123456"), KEY, View(session=seed, session_user=entry()), ctx())
    (user,) = rows_of(decision, PutUser)
    assert user.verified and not user.activated and "entropy" in (decision.reply.data or {})


# --- login of a register account, last_seen -----------------------------------------------------


def test_login_of_a_register_account_returns_pubkey_and_backup_without_entropy_and_sets_last_seen():
    login = session(purpose=Purpose.LOGIN)
    decision = decide(VerifyCode("123456"), KEY, View(session=login, session_user=active()), ctx())
    assert decision.reply == Success({"pubkey": ACCOUNT, "backup": BACKUP})
    (user,) = rows_of(decision, PutUser)
    assert user.last_seen == NOW and user.last_login_at == NOW


def test_login_of_a_seed_account_still_returns_its_entropy():
    login = session(purpose=Purpose.LOGIN)
    seed = active(entropy="e" * 64)
    decision = decide(VerifyCode("123456"), KEY, View(session=login, session_user=seed), ctx())
    assert decision.reply == Success({"entropy": "e" * 64, "pubkey": ACCOUNT, "backup": BACKUP})


def test_seed_activation_sets_last_seen():
    user = entry(verified=True, entropy="e" * 64, pubkey="", backup="")
    verified = session(
        purpose=Purpose.SIGNUP, state=SessionState.VERIFIED, code_hmac="", verified_at=NOW - 10
    )
    decision = decide(Activate(ACCOUNT, BACKUP), KEY, View(session=verified, session_user=user), ctx())
    (activated,) = rows_of(decision, PutUser)
    assert activated.activated and activated.last_seen == NOW


def test_request_account_still_answers_email_taken_for_a_register_account():
    assert outcome(decide(RequestAccount("ana@example.org"), KEY, View(email_user=active()), ctx())) == (
        "email_taken"
    )


# --- a key that proved the address acts for the account (auth_until) ----------------------------


def test_the_codes_that_prove_the_address_let_their_key_act_for_the_account_for_a_while():
    until = NOW + RULES.account_session_s
    login = decide(
        VerifyCode("123456"), KEY, View(session=session(purpose=Purpose.LOGIN), session_user=active()), ctx()
    )
    registered = decide(VerifyCode("123456"), KEY, View(session=session(), session_user=entry()), ctx())
    for decision in (login, registered):
        (spent,) = rows_of(decision, PutSession)
        assert spent.auth_until == until and spent.authorises(NOW) and not spent.authorises(until)


def test_a_session_the_key_opens_for_the_same_account_keeps_the_right_and_a_lock_ends_it():
    from dvm.protocol.methods import ChangeEmail

    authorised = session(
        purpose=Purpose.LOGIN, state=SessionState.CONSUMED, code_hmac="", auth_until=NOW + 60
    )
    view = View(session=authorised, session_user=active(), account_user=active())
    decision = decide(ChangeEmail("new@example.org"), KEY, view, ctx())
    (opened,) = rows_of(decision, PutSession)
    assert (opened.purpose, opened.auth_until) == (Purpose.EMAIL_CHANGE, NOW + 60)
    assert not replace(opened, state=SessionState.LOCKED).authorises(NOW)


def test_a_login_for_another_account_does_not_inherit_the_right():
    from dvm.protocol.methods import RequestLogin

    authorised = session(
        purpose=Purpose.LOGIN, state=SessionState.CONSUMED, code_hmac="", auth_until=NOW + 60
    )
    other = active(id="u2", email="bob@example.org", pubkey="cc" * 32)
    view = View(session=authorised, session_user=active(), email_user=other)
    (opened,) = rows_of(decide(RequestLogin("bob@example.org"), KEY, view, ctx()), PutSession)
    assert opened.user_id == "u2" and opened.auth_until is None


def test_a_register_code_activates_without_entropy_even_if_a_seed_session_drew_one():
    drawn = entry(verified=True, entropy="e" * 64)
    decision = decide(VerifyCode("123456"), KEY, View(session=session(), session_user=drawn), ctx())
    (user,) = rows_of(decision, PutUser)
    assert user.activated and user.entropy == ""

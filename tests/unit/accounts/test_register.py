"""SIGit's one-event signup (``register``): the rows of its table, and the login it leads to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts.decision import DeleteUser, Failure, MailKind, PutCode, PutSession, PutUser, Success, View
from dvm.accounts.machine import TRANSITIONS, decide
from dvm.accounts.rows import CodeKind, Purpose, SessionState, UserRow
from dvm.errors import BadRequest, InvalidEmail
from dvm.nostr.keys import SecretKey
from dvm.protocol.methods import Activate, Register, RequestAccount, ResendCode, VerifyCode, decode_request
from tests.support.machine import ACCOUNT, CODE, KEY, NOW, RULES, code_row, ctx, minted, pending
from tests.support.machine import session as any_session

BACKUP = "ncryptsec1xyz"
PRIVATE = replace(RULES, private_mode=True)


def register(email: str = "ana@example.org", pubkey: str = ACCOUNT, backup: str = BACKUP) -> Register:
    return Register(pubkey, email, backup)


def entry(**changes) -> UserRow:
    """An unfinished signup: an address someone asked for, never proven; it holds no key."""
    base = UserRow("u1", "ana@example.org", False, False, "", "", "", NOW - 100, NOW - 100)
    return replace(base, **changes)


def active(**changes) -> UserRow:
    defaults = {
        "verified": True,
        "activated": True,
        "last_seen": NOW - 50,
        "pubkey": ACCOUNT,
        "backup": BACKUP,
    }
    return entry(**(defaults | changes))


def session(**changes):
    """A pending register session of ``KEY`` holding its claim."""
    return any_session(
        **({"purpose": Purpose.REGISTER, "claim_pubkey": ACCOUNT, "claim_backup": BACKUP} | changes)
    )


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


def test_new_email_keeps_key_and_backup_in_the_session_and_mails_a_signup_code():
    decision = decide(register(), KEY, View(), ctx())
    assert decision.reply == Success(None)
    (user,) = rows_of(decision, PutUser)
    assert (user.email, user.pubkey, user.backup, user.entropy) == ("ana@example.org", "", "", "")
    assert (user.verified, user.activated, user.last_seen) == (False, False, None)
    (new,) = rows_of(decision, PutSession)
    assert (new.pubkey, new.user_id, new.purpose, new.state) == (
        KEY,
        user.id,
        Purpose.REGISTER,
        SessionState.PENDING,
    )
    assert (new.claim_pubkey, new.claim_backup) == (ACCOUNT, BACKUP)
    (mail,) = decision.mails
    assert (mail.kind, mail.to) == (MailKind.SIGNUP_CODE, "ana@example.org")
    assert minted(decision)[1].kind is CodeKind.SIGNUP
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
    [entry(), entry(verified=True, entropy="e" * 64)],
    ids=["pending signup", "seed signup verified, never activated"],
)
def test_a_request_never_erases_a_pending_signup_it_adds_a_session_beside_it(unfinished):
    new_pubkey = "ee" * 32
    decision = decide(register(pubkey=new_pubkey), "cc" * 32, View(email_user=unfinished), ctx())
    assert decision.outcome == "ok"
    assert not rows_of(decision, DeleteUser) and not rows_of(decision, PutUser)
    (opened,) = rows_of(decision, PutSession)
    assert (opened.pubkey, opened.user_id, opened.claim_pubkey) == ("cc" * 32, "u1", new_pubkey)
    assert len(decision.mails) == 1


def test_the_same_request_again_while_pending_is_a_no_op():
    view = View(session=session(), session_user=entry(), email_user=entry(), codes=(code_row(),))
    decision = decide(register(), KEY, view, ctx())
    assert decision.reply == Success(None)
    assert decision.writes == () and decision.mails == ()
    assert decision.transition is not None and decision.transition.session_from is SessionState.PENDING


def test_the_same_key_with_another_backup_starts_its_session_again():
    view = View(
        session=session(), session_user=entry(), email_user=entry(), codes=(code_row(minted_at=NOW - 10),)
    )
    decision = decide(register(backup="QUJD"), KEY, view, ctx())
    (opened,) = rows_of(decision, PutSession)
    assert opened.claim_backup == "QUJD" and not rows_of(decision, DeleteUser)


def test_a_pubkey_of_another_activated_account_is_refused():
    other = active(id="u2", email="bob@example.org")
    decision = decide(register(), KEY, View(pubkey_user=other), ctx())
    assert outcome(decision) == "pubkey_taken"
    assert decision.writes == ()


def test_the_key_is_checked_before_the_address_so_its_answer_tells_nothing_about_the_address():
    other = active(id="u2", email="bob@example.org")
    for view in (View(pubkey_user=other), View(pubkey_user=other, email_user=active())):
        assert outcome(decide(register(), KEY, view, ctx(rules=PRIVATE))) == "pubkey_taken"


def test_past_the_mailboxs_cap_the_session_joins_the_live_code():
    sends = tuple(NOW - i for i in range(RULES.max_codes_per_email_per_hour))
    view = View(code_sends=sends, codes=(code_row(minted_at=NOW - 300),))
    decision = decide(register(), KEY, view, ctx())
    assert decision.reply == Success(None) and decision.mails == ()
    assert not rows_of(decision, PutCode) and rows_of(decision, PutSession)


def test_private_mode_answers_ok_for_an_activated_address_and_mails_its_owner_a_login_code():
    decision = decide(register(), KEY, View(email_user=active()), ctx(rules=PRIVATE))
    assert decision.reply == Success(None)
    (new,) = rows_of(decision, PutSession)
    assert (new.purpose, new.user_id) == (Purpose.LOGIN, "u1")
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_CODE]
    (touched,) = rows_of(decision, PutUser)  # the same work as a new address's (timing)
    assert touched == replace(active(), updated_at=NOW)


def test_blocked_and_suspended_are_checked_first():
    assert outcome(decide(register(), KEY, View(email_blocked=True), ctx())) == "email_blocked"
    suspended = entry(suspended_at=NOW - 5)
    assert outcome(decide(register(), KEY, View(email_user=suspended), ctx())) == "account_suspended"


# --- verify_code, resend_code and activate on a register session ------------------------------


def test_the_right_code_activates_the_sessions_key_and_backup_and_answers_an_empty_object():
    decision = decide(VerifyCode(CODE), KEY, pending(session(), entry()), ctx())
    assert decision.reply == Success(None)
    (user,) = rows_of(decision, PutUser)
    assert (user.verified, user.activated, user.last_seen, user.entropy) == (True, True, NOW, "")
    assert (user.pubkey, user.backup) == (ACCOUNT, BACKUP)
    (spent,) = rows_of(decision, PutSession)
    assert (spent.state, spent.code_hmac, spent.claim_backup) == (SessionState.CONSUMED, "", "")
    assert [m.kind for m in decision.mails] == [MailKind.WELCOME]
    assert decision.transition in TRANSITIONS


def test_the_code_after_another_account_activated_the_key_answers_pubkey_taken():
    view = pending(session(), entry(), pubkey_user=active(id="u2", email="bob@example.org"))
    assert outcome(decide(VerifyCode(CODE), KEY, view, ctx())) == "pubkey_taken"


def test_a_wrong_code_counts_like_any_other():
    decision = decide(VerifyCode("654321"), KEY, pending(session(), entry()), ctx())
    assert isinstance(decision.reply, Failure) and decision.reply.code == "code_invalid"
    assert not rows_of(decision, PutUser)


def test_the_code_after_another_session_activated_the_address_answers_email_taken():
    assert outcome(decide(VerifyCode(CODE), KEY, pending(session(), active()), ctx())) == "email_taken"


def test_a_finished_register_session_takes_no_code_and_cannot_activate():
    done = View(session=session(state=SessionState.CONSUMED), session_user=active())
    assert outcome(decide(VerifyCode(CODE), KEY, done, ctx())) == "no_session"
    assert outcome(decide(Activate(ACCOUNT, BACKUP), KEY, done, ctx())) == "no_session"


def test_resend_code_mails_a_new_signup_code():
    view = View(
        session=session(code_sent_at=NOW - 120),
        session_user=entry(),
        codes=(code_row(minted_at=NOW - 120),),
        session_address="ana@example.org",
    )
    decision = decide(ResendCode(), KEY, view, ctx())
    assert [m.kind for m in decision.mails] == [MailKind.SIGNUP_CODE]


def test_a_seed_signup_code_on_a_register_entry_does_not_activate_its_key():
    """request_account on an unfinished register entry is the seed flow: its code verifies and
    hands out entropy; the entry's key is not activated by it."""
    seed = session(purpose=Purpose.SIGNUP, claim_pubkey="", claim_backup="")
    decision = decide(VerifyCode(CODE), KEY, pending(seed, entry()), ctx())
    (user,) = rows_of(decision, PutUser)
    assert user.verified and not user.activated and "entropy" in (decision.reply.data or {})


# --- login of a register account, last_seen -----------------------------------------------------


def test_login_of_a_register_account_returns_pubkey_and_backup_without_entropy_and_sets_last_seen():
    login = session(purpose=Purpose.LOGIN)
    decision = decide(VerifyCode(CODE), KEY, pending(login, active()), ctx())
    assert decision.reply == Success({"pubkey": ACCOUNT, "backup": BACKUP})
    (user,) = rows_of(decision, PutUser)
    assert user.last_seen == NOW and user.last_login_at == NOW


def test_login_of_a_seed_account_still_returns_its_entropy():
    login = session(purpose=Purpose.LOGIN)
    seed = active(entropy="e" * 64)
    decision = decide(VerifyCode(CODE), KEY, pending(login, seed), ctx())
    assert decision.reply == Success({"entropy": "e" * 64, "pubkey": ACCOUNT, "backup": BACKUP})


def test_seed_activation_sets_last_seen():
    user = entry(verified=True, entropy="e" * 64)
    verified = session(purpose=Purpose.SIGNUP, state=SessionState.VERIFIED, verified_at=NOW - 10)
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
    login = decide(VerifyCode(CODE), KEY, pending(session(purpose=Purpose.LOGIN), active()), ctx())
    registered = decide(VerifyCode(CODE), KEY, pending(session(), entry()), ctx())
    for decision in (login, registered):
        (spent,) = rows_of(decision, PutSession)
        (owner,) = rows_of(decision, PutUser)
        assert spent.auth_until == until and spent.authorises(NOW, owner)
        assert not spent.authorises(until, owner)
        assert not spent.authorises(NOW, replace(owner, auth_epoch=owner.auth_epoch + 1))  # revoked


def test_a_session_the_key_opens_for_the_same_account_keeps_the_right_and_a_lock_ends_it():
    from dvm.protocol.methods import ChangeEmail

    authorised = session(purpose=Purpose.LOGIN, state=SessionState.CONSUMED, auth_until=NOW + 60)
    view = View(session=authorised, session_user=active(), account_user=active(), account_via="session")
    decision = decide(ChangeEmail("new@example.org"), KEY, view, ctx())
    (opened,) = rows_of(decision, PutSession)
    assert (opened.purpose, opened.auth_until) == (Purpose.EMAIL_CHANGE, NOW + 60)
    assert opened.authorises(NOW, active())
    assert not replace(opened, state=SessionState.LOCKED).authorises(NOW, active())


def test_a_login_for_another_account_does_not_inherit_the_right():
    from dvm.protocol.methods import RequestLogin

    authorised = session(purpose=Purpose.LOGIN, state=SessionState.CONSUMED, auth_until=NOW + 60)
    other = active(id="u2", email="bob@example.org", pubkey="cc" * 32)
    view = View(session=authorised, session_user=active(), email_user=other)
    (opened,) = rows_of(decide(RequestLogin("bob@example.org"), KEY, view, ctx()), PutSession)
    assert opened.user_id == "u2" and opened.auth_until is None


def test_a_register_code_activates_without_entropy_even_if_a_seed_session_drew_one():
    drawn = entry(verified=True, entropy="e" * 64)
    decision = decide(VerifyCode(CODE), KEY, pending(session(), drawn), ctx())
    (user,) = rows_of(decision, PutUser)
    assert user.activated and user.entropy == ""

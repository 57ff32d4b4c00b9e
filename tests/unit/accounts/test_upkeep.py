"""Account upkeep and private mode: status, email change with grace, backup change, deletion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts import codes
from dvm.accounts.decision import DeleteUser, MailKind, PutSession, PutUser, Success, View
from dvm.accounts.machine import Context, decide
from dvm.accounts.rows import Purpose, SessionState
from dvm.accounts.rules import AccountRules
from dvm.protocol.methods import (
    Activate,
    ChangeEmail,
    ConfirmEmail,
    DeleteAccount,
    RequestAccount,
    RequestDeletion,
    RequestLogin,
    ResendCode,
    SetNotifications,
    Status,
    UpdateBackup,
    VerifyCode,
)
from tests.unit.accounts.test_machine import (
    ACCOUNT,
    NOW,
    RULES,
    SECRET,
    active_user,
    ctx,
    failure,
    only,
    session,
    user,
)

GRACE = RULES.email_grace_s


def account_view(**changes) -> View:
    return View(account_user=active_user(**changes))


def change_session(code="123456"):
    """The account key's pending email-change session, its code HMAC'd for the account key."""
    return replace(
        session(),
        pubkey=ACCOUNT,
        purpose=Purpose.EMAIL_CHANGE,
        code_hmac=codes.code_hmac(SECRET, ACCOUNT, code),
    )


def test_account_methods_need_an_activated_account_key():
    for request in (Status(), ChangeEmail("new@example.org"), UpdateBackup("YWJj"), RequestDeletion()):
        assert failure(decide(request, "cc" * 32, View(), ctx())) == "unknown_account"
        assert failure(decide(request, ACCOUNT, View(account_user=user()), ctx())) == "unknown_account"


def test_status_without_a_pending_change():
    data = decide(Status(), ACCOUNT, account_view(), ctx()).reply.data
    assert data == {
        "email": "ana@example.org",
        "verified": True,
        "activated": True,
        "pending_email": None,
        "grace_s": None,
        "notifications": {"login_notice": True},
        "created_at": NOW - 100,
    }


def test_status_grace_is_signed_seconds_positive_then_overdue():
    view = account_view(pending_email="new@example.org", grace_deadline=NOW + 500)
    assert decide(Status(), ACCOUNT, view, ctx()).reply.data["grace_s"] == 500
    late = decide(Status(), ACCOUNT, view, ctx(NOW + 800)).reply.data
    assert late["grace_s"] == -300 and late["pending_email"] == "new@example.org"


def test_change_email_reserves_the_address_mails_code_to_new_and_notice_to_old():
    decision = decide(ChangeEmail("new@example.org"), ACCOUNT, account_view(), ctx())
    assert decision.reply == Success(None)
    changed = [w.row for w in decision.writes if isinstance(w, PutUser)][-1]
    assert (changed.email, changed.pending_email, changed.grace_deadline) == (
        "ana@example.org",
        "new@example.org",
        NOW + GRACE,
    )
    change = only(decision.writes, PutSession)
    assert (change.pubkey, change.purpose, change.state) == (
        ACCOUNT,
        Purpose.EMAIL_CHANGE,
        SessionState.PENDING,
    )
    kinds = {(m.kind, m.to) for m in decision.mails}
    assert kinds == {
        (MailKind.EMAIL_CHANGE_CODE, "new@example.org"),
        (MailKind.EMAIL_CHANGE_NOTICE, "ana@example.org"),
    }


def test_grace_is_reset_only_by_the_first_change_of_a_pending_period():
    first = account_view(pending_email="typo@example.org", grace_deadline=NOW + 100)
    decision = decide(ChangeEmail("new@example.org"), ACCOUNT, first, ctx())
    changed = [w.row for w in decision.writes if isinstance(w, PutUser)][-1]
    assert changed.pending_email == "new@example.org" and changed.grace_deadline == NOW + 100  # not moved
    lapsed = account_view(pending_email="typo@example.org", grace_deadline=NOW - 1)
    decision = decide(ChangeEmail("new@example.org"), ACCOUNT, lapsed, ctx())
    assert [w.row for w in decision.writes if isinstance(w, PutUser)][-1].grace_deadline == NOW + GRACE


def test_change_to_an_address_of_another_verified_account_is_refused():
    other = active_user(id="u2", email="new@example.org", pubkey="dd" * 32)
    taken = View(account_user=active_user(), email_user=other)
    assert failure(decide(ChangeEmail("new@example.org"), ACCOUNT, taken, ctx())) == "email_taken"
    # A signup never verified does not own the address: the change goes ahead.
    unfinished = View(account_user=active_user(), email_user=user(id="u2", email="new@example.org"))
    assert decide(ChangeEmail("new@example.org"), ACCOUNT, unfinished, ctx()).reply == Success(None)


def test_a_pending_change_reserves_nothing_against_the_owner():
    """Anyone with an account could once block another person's signup for the grace period."""
    squatter = active_user(
        id="u2", email="bo@example.org", pending_email="new@example.org", grace_deadline=NOW + 9
    )
    # The owner signs up (and logs in) as if nobody had asked; a rival change may also ask.
    signup = decide(RequestAccount("new@example.org"), "cc" * 32, View(pending_users=(squatter,)), ctx())
    assert signup.reply == Success(None) and [m.kind for m in signup.mails] == [MailKind.SIGNUP_CODE]
    rival = View(account_user=active_user(), pending_users=(squatter,))
    assert decide(ChangeEmail("new@example.org"), ACCOUNT, rival, ctx()).reply == Success(None)


def test_the_owners_verified_signup_cancels_pending_changes_to_the_address_and_tells_their_requesters():
    squatter = active_user(
        id="u2", email="bo@example.org", pending_email="new@example.org", grace_deadline=NOW + 9
    )
    owner = user(email="new@example.org")
    view = View(session=session(), session_user=owner, pending_users=(squatter,))
    decision = decide(VerifyCode("123456"), "aa" * 32, view, ctx())
    assert decision.reply.data is not None and "entropy" in decision.reply.data
    cancelled = [w.row for w in decision.writes if isinstance(w, PutUser) and w.row.id == "u2"]
    assert cancelled and (cancelled[0].pending_email, cancelled[0].grace_deadline) == ("", None)
    assert [(m.kind, m.to) for m in decision.mails] == [(MailKind.EMAIL_CHANGE_CANCELLED, "bo@example.org")]


def test_a_confirmed_change_erases_an_unfinished_signup_and_cancels_rival_changes():
    unfinished = user(id="u3", email="new@example.org")
    rival = active_user(
        id="u2",
        email="bo@example.org",
        pubkey="dd" * 32,
        pending_email="new@example.org",
        grace_deadline=NOW + 9,
    )
    view = View(
        session=change_session(),
        account_user=active_user(pending_email="new@example.org", grace_deadline=NOW + 9),
        email_user=unfinished,
        pending_users=(rival,),
    )
    decision = decide(ConfirmEmail("123456"), ACCOUNT, view, ctx())
    assert decision.reply == Success({"email": "new@example.org"})
    assert DeleteUser("u3") in decision.writes
    assert {m.kind for m in decision.mails} == {MailKind.EMAIL_CHANGED, MailKind.EMAIL_CHANGE_CANCELLED}


def test_changing_back_to_the_current_address_cancels_the_pending_change():
    view = account_view(pending_email="new@example.org", grace_deadline=NOW + 9)
    decision = decide(ChangeEmail("ana@example.org"), ACCOUNT, view, ctx())
    assert only(decision.writes, PutUser).pending_email == "" and decision.mails == ()
    assert failure(decide(ChangeEmail("ana@example.org"), ACCOUNT, account_view(), ctx())) == "invalid_email"


def test_confirm_switches_the_address_and_notifies_the_old_one():
    view = View(
        account_user=active_user(pending_email="new@example.org", grace_deadline=NOW + 9),
        session=change_session(),
    )
    decision = decide(ConfirmEmail("123456"), ACCOUNT, view, ctx())
    assert decision.reply == Success({"email": "new@example.org"})
    switched = only(decision.writes, PutUser)
    assert (switched.email, switched.pending_email, switched.grace_deadline) == ("new@example.org", "", None)
    assert only(decision.writes, PutSession).state is SessionState.CONSUMED
    (notice,) = decision.mails
    assert (notice.kind, notice.to, notice.params_dict()["new_email"]) == (
        MailKind.EMAIL_CHANGED,
        "ana@example.org",
        "new@example.org",
    )


def test_confirm_after_the_grace_lapses_the_change():
    view = View(
        account_user=active_user(pending_email="new@example.org", grace_deadline=NOW),
        session=change_session(),
    )
    decision = decide(ConfirmEmail("123456"), ACCOUNT, view, ctx())
    assert failure(decision) == "change_expired"
    assert only(decision.writes, PutUser).pending_email == ""


def test_confirm_with_a_wrong_code_counts_and_when_taken_meanwhile_drops_the_change():
    view = View(
        account_user=active_user(pending_email="new@example.org", grace_deadline=NOW + 9),
        session=change_session(),
    )
    wrong = decide(ConfirmEmail("999999"), ACCOUNT, view, ctx())
    assert failure(wrong) == "code_invalid" and only(wrong.writes, PutSession).attempts == 1
    taken = replace(view, email_user=active_user(id="u2", email="new@example.org", pubkey="dd" * 32))
    decision = decide(ConfirmEmail("123456"), ACCOUNT, taken, ctx())
    assert failure(decision) == "email_taken" and only(decision.writes, PutUser).pending_email == ""


def test_login_keeps_working_with_the_confirmed_address_during_a_change():
    pending = active_user(pending_email="new@example.org", grace_deadline=NOW + 9)
    decision = decide(RequestLogin("ana@example.org"), "cc" * 32, View(email_user=pending), ctx())
    assert [m.to for m in decision.mails] == ["ana@example.org"]


def test_update_backup_keeps_the_previous_and_sends_the_password_changed_email():
    decision = decide(UpdateBackup("bmV3"), ACCOUNT, account_view(), ctx())
    updated = only(decision.writes, PutUser)
    assert (updated.backup, updated.backup_previous) == ("bmV3", "ncryptsec1xyz")
    assert [(m.kind, m.to) for m in decision.mails] == [(MailKind.BACKUP_CHANGED, "ana@example.org")]
    same = decide(UpdateBackup("ncryptsec1xyz"), ACCOUNT, account_view(), ctx())
    assert same.writes == () and same.mails == ()


def test_login_notice_can_be_turned_off_but_security_mail_cannot():
    decision = decide(SetNotifications(False), ACCOUNT, account_view(), ctx())
    assert only(decision.writes, PutUser).notify_login is False
    quiet = active_user(notify_login=False)
    login = View(session=session(purpose=Purpose.LOGIN), session_user=quiet)
    assert decide(VerifyCode("123456"), "aa" * 32, login, ctx()).mails == ()
    assert decide(UpdateBackup("bmV3"), ACCOUNT, View(account_user=quiet), ctx()).mails


def test_deletion_needs_a_fresh_code_then_erases_and_notifies():
    asked = decide(RequestDeletion(), ACCOUNT, account_view(), ctx())
    deletion = only(asked.writes, PutSession)
    assert deletion.purpose is Purpose.DELETION
    code = str(asked.mails[0].params_dict()["code"])
    assert asked.mails[0].kind is MailKind.DELETION_CODE
    view = View(account_user=active_user(), session=deletion)
    wrong = "000000" if code != "000000" else "111111"
    assert failure(decide(DeleteAccount(wrong), ACCOUNT, view, ctx())) == "code_invalid"
    done = decide(DeleteAccount(code), ACCOUNT, view, ctx())
    assert done.reply == Success(None) and done.writes == (DeleteUser("u1"),)
    (notice,) = done.mails
    assert (notice.kind, notice.to, notice.user_id) == (MailKind.ACCOUNT_DELETED, "ana@example.org", None)
    assert failure(decide(DeleteAccount(code), ACCOUNT, account_view(), ctx())) == "no_session"


# --- private mode ------------------------------------------------------------------------------

PRIVATE = AccountRules(private_mode=True)


def pctx(now: int = NOW) -> Context:
    return replace(ctx(now), rules=PRIVATE)


def test_private_mode_signup_for_an_existing_account_mails_the_owner_a_login_code():
    decision = decide(RequestAccount("ana@example.org"), "cc" * 32, View(email_user=active_user()), pctx())
    assert decision.reply == Success(None)
    assert only(decision.writes, PutSession).purpose is Purpose.LOGIN
    assert [m.kind for m in decision.mails] == [MailKind.LOGIN_CODE]


@pytest.mark.parametrize(
    ("request_", "view"),
    [
        (RequestAccount("ana@example.org"), View(email_user=active_user())),
        (RequestAccount("new@example.org"), View()),
        (RequestLogin("ana@example.org"), View(email_user=active_user())),
        (RequestLogin("nobody@example.org"), View()),
        (RequestLogin("ana@example.org"), View(email_user=user(verified=True))),
        (RequestAccount("ana@example.org"), View(email_user=active_user(), code_sends=(NOW,) * 9)),
        (RequestLogin("ana@example.org"), View(email_user=active_user(), code_sends=(NOW,) * 9)),
    ],
)
def test_private_mode_answers_every_address_the_same_and_leaves_a_pending_session(request_, view):
    decision = decide(request_, "cc" * 32, view, pctx())
    assert decision.reply == Success(None)
    assert only(decision.writes, PutSession).state is SessionState.PENDING


def test_private_mode_unknown_login_sends_nothing_and_unfinished_signup_resumes():
    decoy = decide(RequestLogin("nobody@example.org"), "cc" * 32, View(), pctx())
    assert decoy.mails == () and only(decoy.writes, PutSession).user_id is None
    resumed = decide(RequestLogin("ana@example.org"), "cc" * 32, View(email_user=user(verified=True)), pctx())
    assert [m.kind for m in resumed.mails] == [MailKind.SIGNUP_CODE]


def test_private_mode_repeated_requests_from_one_key_answer_alike_for_every_address():
    """Attack F8: a key's login decoy was replaced by a signup, an account's login session kept."""
    answers = []
    for owner in (None, active_user(), user()):
        steps, s, s_user = [], None, None
        for request in (RequestLogin("ana@example.org"), RequestAccount("ana@example.org")):
            view = View(session=s, session_user=s_user, email_user=owner)
            opened = decide(request, "cc" * 32, view, pctx())
            s = only(opened.writes, PutSession)
            created = [w.row for w in opened.writes if isinstance(w, PutUser)]
            s_user = created[0] if created else (owner if s.user_id else None)
            wrong = decide(VerifyCode("000000"), "cc" * 32, View(session=s, session_user=s_user), pctx())
            steps.append((opened.outcome, wrong.outcome, dict(wrong.reply.details)))
            s = next(w.row for w in wrong.writes if isinstance(w, PutSession))
        answers.append(steps)
    assert answers[0] == answers[1] == answers[2]
    assert [step[2] for step in answers[0]] == [{"attempts_left": 4}, {"attempts_left": 4}]


def test_private_mode_a_decoy_answers_every_step_as_a_real_pending_session_would():
    """For a stranger: request_login then verify_code / activate / resend_code answer the same for
    an account and for an unknown address (the oracles an attacker found)."""
    real = decide(RequestLogin("ana@example.org"), "cc" * 32, View(email_user=active_user()), pctx())
    decoy = decide(RequestLogin("nobody@example.org"), "cc" * 32, View(), pctx())
    answers = []
    for opened, owner in ((real, active_user()), (decoy, None)):
        s = replace(only(opened.writes, PutSession), code_sent_at=NOW - 100)
        view = View(session=s, session_user=owner)
        steps = [
            decide(VerifyCode("000000"), "cc" * 32, view, pctx()),
            decide(Activate("dd" * 32, "YWJj"), "cc" * 32, view, pctx()),
            decide(ResendCode(), "cc" * 32, view, pctx()),
        ]
        answers.append([(d.outcome, d.reply) for d in steps])
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == ["code_invalid", "not_verified", "ok"]


def test_private_mode_change_to_a_used_address_looks_like_any_change_and_sends_it_nothing():
    other = active_user(id="u2", email="new@example.org", pubkey="dd" * 32)
    used = decide(
        ChangeEmail("new@example.org"), ACCOUNT, View(account_user=active_user(), email_user=other), pctx()
    )
    free = decide(ChangeEmail("free@example.org"), ACCOUNT, View(account_user=active_user()), pctx())
    assert used.reply == free.reply == Success(None)
    assert [m.kind for m in used.mails] == [MailKind.EMAIL_CHANGE_NOTICE]  # nothing to new@
    assert {m.kind for m in free.mails} == {MailKind.EMAIL_CHANGE_CODE, MailKind.EMAIL_CHANGE_NOTICE}


# --- guessing budget ---------------------------------------------------------------------------


def test_past_the_days_free_wrong_codes_a_session_takes_one_try_and_the_owner_is_told_once():
    free = RULES.code_failures_free_per_day
    view = View(session=session(), session_user=user())
    used_up = replace(view, failures=tuple(NOW - 1000 + i for i in range(free)))
    tripped = decide(VerifyCode("000000"), "aa" * 32, used_up, ctx())
    assert tripped.outcome == "too_many_attempts"  # locked at its first wrong code
    assert [m.kind for m in tripped.mails] == [MailKind.CODE_GUESSING]
    later = replace(view, failures=tuple(NOW - 1000 + i for i in range(free + 3)))
    again = decide(VerifyCode("000000"), "aa" * 32, later, ctx())
    assert again.outcome == "too_many_attempts" and again.mails == ()  # told only once
    # The right code is never refused: the owner is not locked out.
    assert decide(VerifyCode("123456"), "aa" * 32, later, ctx()).outcome == "ok"
    # Before the free ones are used up, a session has its five tries.
    assert decide(VerifyCode("000000"), "aa" * 32, view, ctx()).outcome == "code_invalid"


def test_past_the_days_free_wrong_codes_codes_to_that_mailbox_go_out_further_apart():
    free, base = RULES.code_failures_free_per_day, RULES.code_failure_backoff_s
    last_code = NOW - 30
    view = View(
        email_user=active_user(),
        code_sends=(last_code,),
        failures=tuple(NOW - 1000 + i for i in range(free + 2)),
    )
    waited = decide(RequestLogin("ana@example.org"), "cc" * 32, view, ctx())
    assert waited.outcome == "rate_limited"
    assert dict(waited.reply.details)["retry_after_s"] == last_code + base * 4 - NOW
    assert decide(RequestLogin("ana@example.org"), "cc" * 32, view, ctx(last_code + base * 4)).outcome == "ok"
    # Never more than an hour apart, however many wrong codes.
    many = replace(view, failures=tuple(NOW - 1000 + i for i in range(free + 40)))
    assert decide(RequestLogin("ana@example.org"), "cc" * 32, many, ctx(last_code + 3600)).outcome == "ok"


def test_email_change_and_deletion_codes_count_against_the_account_not_the_address():
    """An account holder guessing at a change to someone else's address burns only its own day."""
    from dvm.accounts.machine import failure_subject

    owner = active_user()
    assert failure_subject(Purpose.EMAIL_CHANGE, owner, "victim@example.org") == f"account:{owner.id}"
    assert failure_subject(Purpose.DELETION, owner, owner.email) == f"account:{owner.id}"
    assert failure_subject(Purpose.LOGIN, owner, "Ana+x@Example.org") == "ana@example.org"

"""Account upkeep and private mode: status, email change with grace, backup change, deletion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts import codes
from dvm.accounts.decision import DeleteUser, Failure, MailKind, PutSession, PutUser, Success, View
from dvm.accounts.machine import Context, decide
from dvm.accounts.rows import Purpose, SessionState
from dvm.accounts.rules import AccountRules
from dvm.protocol.methods import (
    ChangeEmail,
    ConfirmEmail,
    DeleteAccount,
    RequestAccount,
    RequestDeletion,
    RequestLogin,
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


def test_change_to_an_address_used_or_reserved_by_another_account_is_refused():
    other = active_user(id="u2", email="new@example.org", pubkey="dd" * 32)
    taken = View(account_user=active_user(), email_user=other)
    assert failure(decide(ChangeEmail("new@example.org"), ACCOUNT, taken, ctx())) == "email_taken"
    reserver = active_user(
        id="u2", email="bo@example.org", pending_email="new@example.org", grace_deadline=NOW + 9
    )
    reserved = View(account_user=active_user(), pending_user=reserver)
    assert failure(decide(ChangeEmail("new@example.org"), ACCOUNT, reserved, ctx())) == "email_taken"
    # Nor can anyone sign up with a reserved address; once the reservation lapses, they can.
    assert failure(
        decide(RequestAccount("new@example.org"), "cc" * 32, View(pending_user=reserver), ctx())
    ) == ("email_taken")
    assert decide(
        RequestAccount("new@example.org"), "cc" * 32, View(pending_user=reserver), ctx(NOW + 10)
    ).mails


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
    ],
)
def test_private_mode_answers_every_address_the_same(request_, view):
    decision = decide(request_, "cc" * 32, view, pctx())
    assert decision.reply == Success(None)
    assert not isinstance(decision.reply, Failure)


def test_private_mode_unknown_login_sends_nothing_and_unfinished_signup_resumes():
    assert decide(RequestLogin("nobody@example.org"), "cc" * 32, View(), pctx()).mails == ()
    resumed = decide(RequestLogin("ana@example.org"), "cc" * 32, View(email_user=user(verified=True)), pctx())
    assert [m.kind for m in resumed.mails] == [MailKind.SIGNUP_CODE]

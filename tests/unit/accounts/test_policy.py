"""Suspension and blocks (checked before every rule), and the admins' account decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts.decision import DeleteUser, MailKind, PutUser, ReleaseChange, Success, View
from dvm.accounts.machine import (
    Context,
    admin_change_email,
    admin_delete,
    admin_restore_backup,
    admin_suspend,
    admin_unsuspend,
    decide,
)
from dvm.errors import AdminError, EmailTaken
from dvm.protocol.methods import (
    Activate,
    ChangeEmail,
    ConfirmEmail,
    RequestAccount,
    RequestLogin,
    ResendCode,
    Status,
    VerifyCode,
)
from tests.unit.accounts.test_machine import (
    ACCOUNT,
    KEY,
    NOW,
    RULES,
    SECRET,
    active_user,
    ctx,
    failure,
    session,
)

SUSPENDED = active_user(suspended_at=NOW - 10)


def private() -> Context:
    return Context(NOW, ctx().rng, replace(RULES, private_mode=True), SECRET)


@pytest.mark.parametrize(
    ("request_", "pubkey", "view"),
    [
        (RequestAccount("ana@example.org"), KEY, View(email_user=SUSPENDED)),
        (RequestLogin("ana@example.org"), KEY, View(email_user=SUSPENDED)),
        (VerifyCode("123456"), KEY, View(session=session(), session_user=SUSPENDED)),
        (ResendCode(), KEY, View(session=session(), session_user=SUSPENDED)),
        (Activate(ACCOUNT, "ncryptsec1abc"), KEY, View(session=session(), session_user=SUSPENDED)),
        (Status(), ACCOUNT, View(account_user=SUSPENDED)),
        (ChangeEmail("new@example.org"), ACCOUNT, View(account_user=SUSPENDED)),
    ],
)
def test_a_suspended_account_is_refused_first_with_nothing_written_or_mailed(request_, pubkey, view):
    decision = decide(request_, pubkey, view, ctx())
    assert failure(decision) == "account_suspended"
    assert decision.writes == () and decision.mails == ()


def test_private_mode_answers_a_suspended_address_like_an_unknown_one():
    """A decoy session, as for an address nobody has: no mail, nothing else written."""
    unknown = decide(RequestLogin("ana@example.org"), KEY, View(), private())
    for request in (RequestAccount("ana@example.org"), RequestLogin("ana@example.org")):
        decision = decide(request, KEY, View(email_user=SUSPENDED), private())
        assert decision.reply == unknown.reply == Success() and decision.mails == ()
        assert decision.writes == unknown.writes  # the same decoy session


def test_a_blocked_address_is_refused_at_signup_login_change_and_confirmation():
    for request, pubkey, view in (
        (RequestAccount("x@spam.example"), KEY, View(email_blocked=True)),
        (RequestLogin("ana@example.org"), KEY, View(email_user=active_user(), email_blocked=True)),
        (ChangeEmail("x@spam.example"), ACCOUNT, View(account_user=active_user(), email_blocked=True)),
        (ConfirmEmail("123456"), ACCOUNT, View(account_user=active_user(), email_blocked=True)),
    ):
        decision = decide(request, pubkey, view, private())
        assert failure(decision) == "email_blocked" and decision.mails == (), request
    status = decide(Status(), ACCOUNT, View(account_user=active_user(), email_blocked=True), ctx())
    assert isinstance(status.reply, Success)  # a blocked pending address does not stop other methods


def test_admin_change_email_follows_the_user_rules_a_pending_change_reserves_nothing():
    ana, dan = active_user(), active_user(id="u2", email="dan@example.org", pubkey="cc" * 32)
    rival = replace(dan, pending_email="b@example.org", grace_deadline=NOW + 60)
    moved = admin_change_email(ana, "b@example.org", None, (rival,), ctx())
    rows = {w.row.id: w.row for w in moved.writes if hasattr(w, "row")}
    assert rows[ana.id].email == "b@example.org" and "u2" not in rows
    assert ReleaseChange("u2", "b@example.org", NOW) in moved.writes  # only its pending change
    assert {m.kind for m in moved.mails} == {MailKind.EMAIL_CHANGED, MailKind.EMAIL_CHANGE_CANCELLED}
    with pytest.raises(EmailTaken):  # another verified account's address
        admin_change_email(ana, "dan@example.org", dan, (), ctx())


def test_admin_delete_notifies_only_a_verified_address():
    unverified = replace(active_user(), verified=False, activated=False)
    assert admin_delete(unverified, ctx()).mails == ()
    decision = admin_delete(active_user(), ctx(), by="admin alice")
    assert [m.kind for m in decision.mails] == [MailKind.ACCOUNT_DELETED]
    assert decision.writes == (DeleteUser("u1", NOW, "admin alice"),)
    assert admin_delete(active_user(), ctx(), notify=False).mails == ()


def test_admin_suspend_unsuspend_and_restore_backup():
    suspended = admin_suspend(active_user(), ctx()).writes[0]
    assert isinstance(suspended, PutUser) and suspended.row.suspended_at == NOW
    with pytest.raises(AdminError):
        admin_suspend(suspended.row, ctx())
    assert admin_unsuspend(suspended.row, ctx()).writes[0].row.suspended_at is None
    with pytest.raises(AdminError):
        admin_restore_backup(active_user(), ctx())
    restored = admin_restore_backup(active_user(backup="new", backup_previous="old"), ctx())
    assert (restored.writes[0].row.backup, restored.writes[0].row.backup_previous) == ("old", "new")
    assert [m.kind for m in restored.mails] == [MailKind.BACKUP_CHANGED]

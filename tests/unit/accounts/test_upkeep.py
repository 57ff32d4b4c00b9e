"""Account upkeep and private mode: status, email change with grace, backup change, deletion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvm.accounts.decision import (
    DeleteUser,
    MailKind,
    PutSession,
    PutUser,
    RecordCodeFailure,
    ReleaseChange,
    SpendCode,
    Success,
    View,
)
from dvm.accounts.machine import Context, decide
from dvm.accounts.rows import CodeKind, Purpose, SessionState
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
    RevokeSessions,
    SetNotifications,
    Status,
    UpdateBackup,
    VerifyCode,
)
from tests.support.machine import (
    ACCOUNT,
    CODE,
    NOW,
    RULES,
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

GRACE = RULES.email_grace_s


def account_view(**changes) -> View:
    return View(account_user=active_user(**changes))


def change_session():
    """The account key's pending email-change session, on the new address's codes."""
    return replace(session(), pubkey=ACCOUNT, purpose=Purpose.EMAIL_CHANGE, subject="new@example.org")


def change_view(**changes) -> View:
    """An account with a change to new@ pending, the change's session, and new@'s code."""
    base = View(
        account_user=active_user(pending_email="new@example.org", grace_deadline=NOW + 9),
        session=change_session(),
        account_via="key",
        codes=(code_row(kind=CodeKind.EMAIL_CHANGE),),
        session_address="new@example.org",
    )
    return replace(base, **changes)


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
    view = pending(session(subject="new@example.org"), owner, pending_users=(squatter,))
    decision = decide(VerifyCode(CODE), "aa" * 32, view, ctx())
    assert decision.reply.data is not None and "entropy" in decision.reply.data
    # Only the rival's pending change ends, and only if it still names the address: its own
    # requests may write the rest of its row meanwhile (another daemon, dvm.store.keylocks).
    assert ReleaseChange("u2", "new@example.org", NOW) in decision.writes
    assert not [w for w in decision.writes if isinstance(w, PutUser) and w.row.id == "u2"]
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
    view = change_view(email_user=unfinished, pending_users=(rival,))
    decision = decide(ConfirmEmail(CODE), ACCOUNT, view, ctx())
    assert decision.reply == Success({"email": "new@example.org"})
    assert DeleteUser("u3") in decision.writes
    assert {m.kind for m in decision.mails} == {MailKind.EMAIL_CHANGED, MailKind.EMAIL_CHANGE_CANCELLED}


def test_changing_back_to_the_current_address_cancels_the_pending_change():
    view = account_view(pending_email="new@example.org", grace_deadline=NOW + 9)
    decision = decide(ChangeEmail("ana@example.org"), ACCOUNT, view, ctx())
    assert only(decision.writes, PutUser).pending_email == "" and decision.mails == ()
    assert failure(decide(ChangeEmail("ana@example.org"), ACCOUNT, account_view(), ctx())) == "invalid_email"


def test_confirm_switches_the_address_notifies_the_old_one_and_ends_other_sessions():
    decision = decide(ConfirmEmail(CODE), ACCOUNT, change_view(), ctx())
    assert decision.reply == Success({"email": "new@example.org"})
    switched = only(decision.writes, PutUser)
    assert (switched.email, switched.pending_email, switched.grace_deadline) == ("new@example.org", "", None)
    assert switched.auth_epoch == 1  # every session's right to act for the account ends
    assert only(decision.writes, PutSession).state is SessionState.CONSUMED
    assert only(decision.writes, SpendCode).code_id == 1
    (notice,) = decision.mails
    assert (notice.kind, notice.to, notice.params_dict()["new_email"]) == (
        MailKind.EMAIL_CHANGED,
        "ana@example.org",
        "new@example.org",
    )


def test_confirm_after_the_grace_lapses_the_change():
    view = change_view(account_user=active_user(pending_email="new@example.org", grace_deadline=NOW))
    decision = decide(ConfirmEmail(CODE), ACCOUNT, view, ctx())
    assert failure(decision) == "change_expired"
    assert only(decision.writes, PutUser).pending_email == ""


def test_confirm_with_a_wrong_code_counts_and_when_taken_meanwhile_drops_the_change():
    view = change_view()
    wrong = decide(ConfirmEmail("999999"), ACCOUNT, view, ctx())
    assert failure(wrong) == "code_invalid" and only(wrong.writes, PutSession).attempts == 1
    taken = replace(view, email_user=active_user(id="u2", email="new@example.org", pubkey="dd" * 32))
    decision = decide(ConfirmEmail(CODE), ACCOUNT, taken, ctx())
    assert failure(decision) == "email_taken" and only(decision.writes, PutUser).pending_email == ""


def test_login_keeps_working_with_the_confirmed_address_during_a_change():
    pending = active_user(pending_email="new@example.org", grace_deadline=NOW + 9)
    decision = decide(RequestLogin("ana@example.org"), "cc" * 32, View(email_user=pending), ctx())
    assert [m.to for m in decision.mails] == ["ana@example.org"]


def test_update_backup_keeps_the_previous_and_sends_the_password_changed_email():
    decision = decide(UpdateBackup("bmV3"), ACCOUNT, account_view(), ctx())
    updated = only(decision.writes, PutUser)
    assert (updated.backup, updated.backup_previous, updated.auth_epoch) == ("bmV3", "ncryptsec1xyz", 1)
    assert [(m.kind, m.to) for m in decision.mails] == [(MailKind.BACKUP_CHANGED, "ana@example.org")]
    same = decide(UpdateBackup("ncryptsec1xyz"), ACCOUNT, account_view(), ctx())
    assert same.writes == () and same.mails == ()


def test_login_notice_can_be_turned_off_but_security_mail_cannot():
    decision = decide(SetNotifications(False), ACCOUNT, account_view(), ctx())
    assert only(decision.writes, PutUser).notify_login is False
    quiet = active_user(notify_login=False)
    login = pending(session(purpose=Purpose.LOGIN), quiet)
    assert decide(VerifyCode(CODE), "aa" * 32, login, ctx()).mails == ()
    assert decide(UpdateBackup("bmV3"), ACCOUNT, View(account_user=quiet), ctx()).mails


def test_deletion_needs_a_fresh_code_then_erases_and_notifies():
    asked = decide(RequestDeletion(), ACCOUNT, account_view(), ctx())
    deletion = only(asked.writes, PutSession)
    assert deletion.purpose is Purpose.DELETION
    code, row = minted(asked)
    assert asked.mails[0].kind is MailKind.DELETION_CODE and row.kind is CodeKind.DELETION
    view = View(account_user=active_user(), session=deletion, codes=(replace(row, id=7),))
    wrong = "000000" if code != "000000" else "111111"
    assert failure(decide(DeleteAccount(wrong), ACCOUNT, view, ctx())) == "code_invalid"
    done = decide(DeleteAccount(code), ACCOUNT, view, ctx())
    assert done.reply == Success(None) and done.writes == (DeleteUser("u1"),)  # its codes go with it
    (notice,) = done.mails
    assert (notice.kind, notice.to, notice.user_id) == (MailKind.ACCOUNT_DELETED, "ana@example.org", None)
    assert failure(decide(DeleteAccount(code), ACCOUNT, account_view(), ctx())) == "no_session"


# --- private mode ------------------------------------------------------------------------------

PRIVATE = AccountRules(private_mode=True)


def pctx(now: int = NOW) -> Context:
    """Private mode, with the method's minimum and a request that brought more (a price or two)."""
    return replace(ctx(now), rules=PRIVATE, pow_minimum=16, pow_bits=24)


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
        (RequestLogin("ana@example.org"), View(email_user=active_user(), codes=(code_row(),))),
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
        view = View(session=s, session_user=owner, session_address="ana@example.org" if owner else "")
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


# --- guessing: long codes, never a delay -------------------------------------------------------


def wrongs(n: int) -> tuple[int, ...]:
    return tuple(NOW - 1000 + i for i in range(n))


def test_wrong_codes_count_on_the_mailbox_and_the_owner_is_told_once_when_its_codes_turn_long():
    free = RULES.code_failures_free
    almost = replace(pending(), failures=wrongs(free - 1))
    tripped = decide(VerifyCode("000000"), "aa" * 32, almost, ctx())
    assert tripped.outcome == "code_invalid" and dict(tripped.reply.details) == {"attempts_left": 4}
    assert [(m.kind, m.to) for m in tripped.mails] == [(MailKind.CODE_GUESSING, "ana@example.org")]
    later = replace(pending(), failures=wrongs(free + 3))
    again = decide(VerifyCode("000000"), "aa" * 32, later, ctx())
    assert again.outcome == "code_invalid" and again.mails == ()  # told only once


def test_past_the_free_wrong_codes_six_digits_stop_working_and_new_codes_are_long_at_once():
    guessed = replace(pending(), failures=wrongs(RULES.code_failures_free))
    assert decide(VerifyCode(CODE), "aa" * 32, guessed, ctx()).outcome == "code_invalid"  # guessing stops
    # The owner asks again and gets a long code at once: never delayed, never refused.
    view = View(
        email_user=active_user(), failures=wrongs(RULES.code_failures_free + 40), code_sends=(NOW - 30,)
    )
    asked = decide(RequestLogin("ana@example.org"), "cc" * 32, view, ctx())
    code, row = minted(asked)
    assert asked.outcome == "ok" and len(code) == 16 and row.long
    opened = only(asked.writes, PutSession)
    long = replace(
        view,
        session=opened,
        session_user=active_user(),
        session_address="ana@example.org",
        codes=(replace(row, id=9),),
    )
    assert decide(VerifyCode(code), "cc" * 32, long, ctx()).outcome == "ok"


def test_wrong_codes_of_a_decoy_count_like_any_and_tell_nobody():
    # A mailbox turns long alike whether its address has an account (private mode shows nothing);
    # long codes never delay the owner, and nobody is told of a decoy's guesses.
    decoy = session(user_id=None, decoy=True, purpose=Purpose.LOGIN)
    view = View(session=decoy, failures=wrongs(RULES.code_failures_free - 1))
    wrong = decide(VerifyCode("000000"), "aa" * 32, view, pctx())
    assert wrong.outcome == "code_invalid" and wrong.mails == ()
    assert [type(w) for w in wrong.writes] == [PutSession, RecordCodeFailure]


def test_email_change_codes_count_on_the_new_address_mailbox():
    wrong = decide(ConfirmEmail("999999"), ACCOUNT, change_view(), ctx())
    (counted,) = [w for w in wrong.writes if not isinstance(w, PutSession)]
    assert counted.subject == "new@example.org"


# --- sessions are revocable ---------------------------------------------------------------------


def authorised_view(**changes) -> View:
    login = session(purpose=Purpose.LOGIN, state=SessionState.CONSUMED, auth_until=NOW + 600)
    base = View(session=login, session_user=active_user(), account_user=active_user(), account_via="session")
    return replace(base, **changes)


def test_revoke_sessions_ends_every_other_sessions_right_and_keeps_the_acting_one():
    decision = decide(RevokeSessions(), "aa" * 32, authorised_view(), ctx())
    assert decision.reply == Success(None)
    bumped = only(decision.writes, PutUser)
    kept = only(decision.writes, PutSession)
    assert bumped.auth_epoch == 1 and kept.auth_epoch == 1 and kept.authorises(NOW, bumped)
    other = session(
        pubkey="dd" * 32, purpose=Purpose.LOGIN, state=SessionState.CONSUMED, auth_until=NOW + 600
    )
    assert other.authorises(NOW, active_user()) and not other.authorises(NOW, bumped)
    sealed = decide(RevokeSessions(), ACCOUNT, account_view(), ctx())
    assert only(sealed.writes, PutUser).auth_epoch == 1 and not any(
        isinstance(w, PutSession) for w in sealed.writes
    )


def test_a_backup_change_by_session_keeps_that_session_and_ends_the_others():
    decision = decide(UpdateBackup("bmV3"), "aa" * 32, authorised_view(), ctx())
    assert (
        only(decision.writes, PutUser).auth_epoch == 1 and only(decision.writes, PutSession).auth_epoch == 1
    )


def test_a_change_email_sealed_by_the_key_ends_every_session_a_session_one_does_not():
    by_key = decide(
        ChangeEmail("new@example.org"), ACCOUNT, replace(account_view(), account_via="key"), ctx()
    )
    assert [w.row.auth_epoch for w in by_key.writes if isinstance(w, PutUser)] == [1]
    by_session = decide(ChangeEmail("new@example.org"), "aa" * 32, authorised_view(), ctx())
    assert [w.row.auth_epoch for w in by_session.writes if isinstance(w, PutUser)] == [0]

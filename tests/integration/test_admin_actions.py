"""Admins' actions through the real command on a real database, and what the service then does."""

from __future__ import annotations

import json

from dvm.accounts.decision import Mail, MailKind
from dvm.store import repository
from dvm.store.database import immediate
from dvm.store.sealed import ParamsSeal
from tests.support.admin_world import BACKUP, BACKUP_2, cli, deliver, mail_rows
from tests.support.daemon import body_code
from tests.support.flows import dump, new_client


def audit_actions(h) -> list[str]:
    return [e["action"] for e in json.loads(cli(h, "audit", "list", "--json").stdout)]


# --- email change: the same reservation rules as the user's own change --------------------------


def test_admin_change_email_cannot_leave_two_users_holding_an_address(world):
    """The bug: the admin path checked only who holds the address, so two users could hold B
    (one as email, one as pending_email). Now the admin's change, like a confirmed one, wins:
    the other account's pending change to B is cancelled and its requester told."""
    dan = new_client(4)
    dan_key = new_client(5)
    world.send(dan, "request_account", {"email": "dan@example.org"})
    world.send(dan, "verify_code", {"code": world.last_code("dan@example.org")})
    world.send(dan, "activate", {"pubkey": dan_key.key.pubkey_hex, "backup": BACKUP}, seal=dan_key.key)
    assert world.send(dan_key, "change_email", {"email": "b@example.org"}).ok  # dan asks for B
    cli(world, "users", "change-email", "ana@example.org", "B@example.org", "--yes")
    holders = world.count("users", "email = 'b@example.org' OR pending_email = 'b@example.org'")
    assert holders == 1 and world.count("users", "email = 'b@example.org'") == 1
    assert world.count("mail", "kind = 'email_change_cancelled' AND recipient = 'dan@example.org'") == 1


def test_change_email_moves_the_account_and_tells_the_old_address(world):
    cli(world, "users", "change-email", "ana@example.org", "Ana.New@Example.org", "--yes")
    assert world.count("users", "email = 'ana.new@example.org'") == 1
    assert world.count("mail", "kind = 'email_changed' AND recipient = 'ana@example.org'") == 1
    # bo's signup was never verified: it does not own the address, so the move takes it over
    # (and erases that unfinished signup), as a confirmed change by the user would.
    cli(world, "users", "change-email", "ana.new@example.org", "bo@example.org", "--yes")
    assert world.count("users", "email = 'bo@example.org'") == 1
    assert world.count("users", "email = 'bo@example.org' AND activated = 1") == 1
    # Another verified account's address is refused.
    world.send(world.bo, "request_account", {"email": "dan@example.org"})
    world.send(world.bo, "verify_code", {"code": world.last_code("dan@example.org")})
    taken = cli(world, "users", "change-email", "bo@example.org", "dan@example.org", "--yes", check=False)
    assert taken.returncode == 1 and "another account" in taken.stderr


# --- suspension -----------------------------------------------------------------------------------


def test_a_suspended_account_is_refused_on_every_method_without_mail(world):
    cli(world, "users", "suspend", "ana@example.org")
    mails = world.count("mail")
    laptop = new_client(7)
    for client, method, params in (
        (laptop, "request_login", {"email": "ana@example.org"}),
        (new_client(8), "request_account", {"email": "ana@example.org"}),
        (world.ana_key, "status", {}),
        (world.ana_key, "change_email", {"email": "other@example.org"}),
        (world.ana_key, "update_backup", {"backup": BACKUP_2}),
        (world.ana_key, "request_deletion", {}),
        (world.ana, "activate", {"pubkey": world.account, "backup": BACKUP}),
    ):
        seal = world.ana_key.key if method == "activate" else None
        world.now += 1  # a new seal: one carried before is refused as used
        assert world.send(client, method, params, seal=seal).code == "account_suspended", method
    assert world.count("mail") == mails
    shown = json.loads(cli(world, "users", "show", "ana@example.org", "--json").stdout)
    assert shown["suspended"] is True and shown["suspended_at"].endswith("Z")
    assert [u["email"] for u in json.loads(cli(world, "users", "list", "--suspended", "--json").stdout)] == [
        "ana@example.org"
    ]
    again = cli(world, "users", "suspend", "ana@example.org", check=False)
    assert again.returncode == 1 and "already suspended" in again.stderr
    assert json.loads(cli(world, "stats", "--json").stdout)["suspended_users"] == 1
    cli(world, "users", "unsuspend", world.account[:10])
    assert world.send(laptop, "request_login", {"email": "ana@example.org"}).ok
    assert audit_actions(world) == ["unsuspend-user", "suspend-user"]


def test_a_suspended_signup_gets_no_resend_from_the_admin_either(world):
    cli(world, "users", "suspend", "bo@example.org")
    assert world.send(world.bo, "resend_code").code == "account_suspended"
    out = cli(world, "sessions", "resend-code", world.bo.key.pubkey_hex, check=False)
    assert out.returncode == 1 and "suspended" in out.stderr


# --- blocks ---------------------------------------------------------------------------------------


def test_blocked_domains_and_addresses_are_refused_at_signup_login_and_change(world):
    cli(world, "blocks", "add", "Spam.Example", "--reason", "throwaway")
    cli(world, "blocks", "add", "Ana@Example.org")
    mails = world.count("mail")
    assert world.send(new_client(20), "request_account", {"email": "x@spam.example"}).code == "email_blocked"
    assert world.send(new_client(21), "request_account", {"email": "x@mail.spam.example"}).code == (
        "email_blocked"
    )
    assert world.send(new_client(22), "request_login", {"email": "ana@example.org"}).code == "email_blocked"
    assert world.send(world.ana_key, "change_email", {"email": "y@spam.example"}).code == "email_blocked"
    assert world.send(new_client(23), "request_account", {"email": "x@notspam.example"}).ok
    assert world.count("mail") == mails + 1  # only the last one
    admin = cli(world, "users", "change-email", "bo@example.org", "z@spam.example", "--yes", check=False)
    assert admin.returncode == 1 and "blocked" in admin.stderr
    listed = json.loads(cli(world, "blocks", "list", "--json").stdout)
    assert {(b["value"], b["kind"], b["actor"]) for b in listed} == {
        ("spam.example", "domain", "alice"),
        ("ana@example.org", "address", "alice"),
    }
    stats = json.loads(cli(world, "stats", "--days", "100000", "--json").stdout)
    assert stats["blocks"] == {"address": 1, "domain": 1}
    assert stats["failures"]["email_blocked"] == 4 and stats["days"][0]["blocked"] == 4
    dup = cli(world, "blocks", "add", "spam.example", check=False)
    assert dup.returncode == 1 and "already blocked" in dup.stderr
    cli(world, "blocks", "remove", "spam.example")
    assert world.send(new_client(24), "request_account", {"email": "x@spam.example"}).ok
    assert audit_actions(world)[:3] == ["unblock", "block", "block"]


def test_a_blocked_mailbox_covers_its_tag_case_and_gmail_dot_variants(world):
    """Attack F9: a block on one spelling let the same inbox sign up under another."""
    cli(world, "blocks", "add", "mallory@gmail.com")
    for spelling in ("mallory+x@gmail.com", "m.allory@googlemail.com", "MALLORY+1@GMAIL.COM"):
        assert world.send(new_client(40), "request_account", {"email": spelling}).code == "email_blocked"
    assert world.send(new_client(41), "request_account", {"email": "mallory2@gmail.com"}).ok


def test_a_blocked_pending_address_cannot_be_confirmed(world):
    assert world.send(world.ana_key, "change_email", {"email": "new@example.org"}).ok
    code = world.last_code("new@example.org")
    cli(world, "blocks", "add", "new@example.org")
    assert world.send(world.ana_key, "confirm_email", {"code": code}).code == "email_blocked"
    assert world.count("users", "email = 'ana@example.org'") == 1


# --- export, restore-backup, audit purge ----------------------------------------------------------


def test_export_holds_everything_about_one_person_but_no_secret(world):
    laptop = new_client(30)
    assert world.send(laptop, "request_login", {"email": "ana@example.org"}).ok
    code = world.last_code("ana@example.org")
    assert world.send(laptop, "verify_code", {"code": code}).ok
    cli(world, "users", "change-email", "ana@example.org", "ana2@example.org", "--yes")
    raw = cli(world, "users", "export", "ana2@example.org").stdout
    data = json.loads(raw)
    assert data["account"]["email"] == "ana2@example.org" and data["account"]["pubkey"] == world.account
    assert {s["purpose"] for s in data["sessions"]} == {"signup", "login"}
    assert {m["kind"] for m in data["mail"]} >= {"signup_code", "welcome", "login_code", "email_changed"}
    assert len(data["codes_sent"]) == 2 and data["codes_sent"][0]["sent_at"].endswith("Z")
    assert {r["method"] for r in data["requests"]} == {
        "request_account",
        "verify_code",
        "activate",
        "request_login",
    }
    assert [a["action"] for a in data["audit"]] == ["change-email"]
    entropy = world.conn.execute("SELECT entropy FROM users WHERE email = 'ana2@example.org'").fetchone()[0]
    for secret in (entropy, BACKUP, code):
        assert secret not in raw


def test_restore_backup_puts_back_the_previous_one_and_tells_the_owner(world):
    none = cli(world, "users", "restore-backup", "ana@example.org", "--yes", check=False)
    assert none.returncode == 1 and "no previous backup" in none.stderr
    assert world.send(world.ana_key, "update_backup", {"backup": BACKUP_2}).ok
    cli(world, "users", "restore-backup", "ana@example.org", "--yes")
    laptop = new_client(31)
    world.send(laptop, "request_login", {"email": "ana@example.org"})
    assert (
        world.send(laptop, "verify_code", {"code": world.last_code("ana@example.org")}).result["backup"]
        == BACKUP
    )
    assert world.count("mail", "kind = 'backup_changed'") == 2  # the user's update, then the restore
    assert audit_actions(world) == ["restore-backup"]


def test_audit_purge_deletes_old_rows_and_is_audited(world):
    cli(world, "blocks", "add", "old.example")
    world.conn.execute("UPDATE audit SET at = at - 400 * 86400")
    cli(world, "blocks", "add", "new.example")
    assert "purged 1 audit row" in cli(world, "audit", "purge", "--older-than", "365d", "--yes").stdout
    assert audit_actions(world) == ["purge-audit", "block"]


def test_requests_purge_keeps_what_could_still_be_replayed_or_is_not_out_yet(world):
    total = world.count("requests")
    assert total >= 2
    # Every record could still be replayed (created just now): none goes, whatever --older-than.
    assert "purged 0 request" in cli(world, "requests", "purge", "--older-than", "0", "--yes").stdout
    # Created a day ago (no replay possible), answered half an hour ago; half of them published.
    world.conn.execute(
        "UPDATE requests SET created_at = created_at - 86400, processed_at = processed_at - 1800, "
        "published_at = CASE WHEN rowid % 2 = 0 THEN processed_at - 1800 END"
    )
    published = world.count("requests", "published_at IS NOT NULL")
    out = cli(world, "requests", "purge", "--older-than", "10m", "--yes").stdout
    assert f"purged {published} request" in out
    assert world.count("requests") == total - published  # replies not out yet (nor expired) stay
    assert audit_actions(world)[0] == "purge-requests"
    assert cli(world, "requests", "purge", check=False).returncode == 2  # without --yes


# --- GDPR erasure -------------------------------------------------------------------------------


def file_bytes(h) -> bytes:
    """The database file and its WAL, as a thief would read them. On PostgreSQL, every row of
    every table: its files keep dead rows until (auto)vacuum, which docs/operations.md says."""
    if h.url:
        return dump(h.conn).encode()
    data = (h.dir / "db.sqlite3").read_bytes()
    wal = h.dir / "db.sqlite3-wal"
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_deleting_a_user_leaves_no_address_anywhere_in_the_file(world):
    cli(world, "users", "change-email", "ana@example.org", "ana.two@example.org", "--yes")
    assert world.send(world.ana_key, "change_email", {"email": "ana.three@example.org"}).ok
    cli(world, "users", "suspend", "ana.two@example.org")
    before = file_bytes(world)
    for address in (b"ana@example.org", b"ana.two@example.org", b"ana.three@example.org"):
        assert address in before
    done = json.loads(
        cli(world, "users", "delete", "ana.two@example.org", "--no-notify", "--yes", "--json").stdout
    )
    assert done["checkpointed"] is True and done["notified"] is False
    after = file_bytes(world)
    for address in (b"ana@example.org", b"ana.two@example.org", b"ana.three@example.org"):
        assert address not in after, address
    assert b"bo@example.org" in after  # the others are untouched
    rows = json.loads(cli(world, "audit", "list", "--json").stdout)
    assert [r["action"] for r in rows] == ["delete-user", "suspend-user", "change-email"]
    assert rows[2]["detail"].startswith("erased:") and " -> erased:" in rows[2]["detail"]
    for address in ("ana@example.org", "Ana.Two@example.org", "ana.three@example.org"):
        found = json.loads(cli(world, "users", "erased", address, "--json").stdout)
        assert found["erased"] is True and found["erased_by"] == "admin alice", address
    assert "no erased user" in cli(world, "users", "erased", "bo@example.org").stdout


def test_deletion_notices_go_only_to_verified_addresses(world):
    cli(world, "users", "delete", "bo@example.org", "--yes")  # never verified: a stranger may own it
    assert world.count("mail", "kind = 'account_deleted'") == 0
    assert b"bo@example.org" not in file_bytes(world)
    cli(world, "users", "delete", "ana@example.org", "--yes")
    assert world.count("mail", "kind = 'account_deleted' AND recipient = 'ana@example.org'") == 1
    details = [r["detail"] for r in json.loads(cli(world, "audit", "list", "--json").stdout)]
    assert details == ["notified", "not notified (address never verified)"]


def test_the_owners_own_deletion_is_erased_the_same_way(world):
    assert world.send(world.ana_key, "request_deletion").ok
    assert world.send(world.ana_key, "delete_account", {"code": world.last_code("ana@example.org")}).ok
    found = json.loads(cli(world, "users", "erased", "ana@example.org", "--json").stdout)
    assert found["erased"] is True and found["erased_by"] == "the account owner"


async def test_a_second_erasure_of_an_address_also_removes_the_first_ones_sent_notice(world, smtp):
    cli(world, "users", "delete", "ana@example.org", "--yes")
    await deliver(world, smtp)
    assert mail_rows(world, "account_deleted") == [("ana@example.org", "sent", "")]
    again = new_client(40)
    world.send(again, "request_account", {"email": "ana@example.org"})
    cli(world, "users", "delete", "ana@example.org", "--no-notify", "--yes")
    assert b"ana@example.org" not in file_bytes(world)


# --- mail the admin commands queue reaches the mailbox: the daemon's own worker, a real server ---
# (issue 25: the CLI sealed its notices with an empty secret, so every worker dead-lettered them,
# and a test that marked them sent with an UPDATE hid it.)


def received(smtp, to: str, subject: str):
    """The one message to ``to`` whose subject is ``subject``."""
    (msg,) = [m for m in smtp.messages if m["To"] == to and m["Subject"] == subject]
    return msg


def body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


async def test_the_deletion_notice_of_users_delete_is_delivered(world, smtp):
    cli(world, "users", "delete", "ana@example.org", "--yes")
    await deliver(world, smtp)
    assert mail_rows(world, "account_deleted") == [("ana@example.org", "sent", "")]
    msg = received(smtp, "ana@example.org", "Your SIGit account was deleted")
    assert "The SIGit account of ana@example.org was deleted at " in body(msg)
    assert not [m for m in smtp.messages if m["Subject"] == "Your SIGit account was deleted" and m is not msg]


async def test_the_notices_of_users_change_email_are_delivered(world, smtp):
    dan, dan_key = new_client(4), new_client(5)
    world.send(dan, "request_account", {"email": "dan@example.org"})
    world.send(dan, "verify_code", {"code": world.last_code("dan@example.org")})
    world.send(dan, "activate", {"pubkey": dan_key.key.pubkey_hex, "backup": BACKUP}, seal=dan_key.key)
    assert world.send(dan_key, "change_email", {"email": "b@example.org"}).ok  # then the admin takes b@
    cli(world, "users", "change-email", "ana@example.org", "b@example.org", "--yes")
    await deliver(world, smtp)
    assert mail_rows(world, "email_changed") == [("ana@example.org", "sent", "")]
    assert mail_rows(world, "email_change_cancelled") == [("dan@example.org", "sent", "")]
    assert "b@example.org" in body(received(smtp, "ana@example.org", "Your SIGit address was changed"))
    received(smtp, "dan@example.org", "Your SIGit address change was cancelled")


async def test_the_notice_of_users_restore_backup_is_delivered(world, smtp):
    assert world.send(world.ana_key, "update_backup", {"backup": BACKUP_2}).ok
    await deliver(world, smtp)  # the owner's own update: its notice goes first
    smtp.messages.clear()
    cli(world, "users", "restore-backup", "ana@example.org", "--yes")
    await deliver(world, smtp)
    assert [r[1] for r in mail_rows(world, "backup_changed")] == ["sent", "sent"]
    received(smtp, "ana@example.org", "Your SIGit password was changed")


async def test_codes_of_sessions_resend_code_and_unlock_arrive_and_work(world, smtp):
    cli(world, "sessions", "resend-code", world.bo.key.pubkey_hex[:12])
    cli(world, "sessions", "unlock", world.cy.key.pubkey_hex[:12])
    await deliver(world, smtp)
    for client, address in ((world.bo, "bo@example.org"), (world.cy, "cy@example.org")):
        codes = [body_code(m) for m in smtp.messages if m["To"] == address]
        assert len(codes) == 2  # the user's first code, then the admin's
        assert world.send(client, "verify_code", {"code": codes[-1]}).ok
    assert not [r for r in mail_rows(world, "signup_code") if r[1] == "dead"]


async def test_mail_retry_sends_a_dead_letter_again(world, smtp):
    smtp.refuse = "550 no such user"
    await deliver(world, smtp)  # everything queued so far is refused for good
    assert {r[1] for r in mail_rows(world, "welcome")} == {"dead"}
    dead = json.loads(cli(world, "mail", "dead", "--json").stdout)
    welcome = next(m["id"] for m in dead if m["kind"] == "welcome")
    assert "550 no such user" in next(m["last_error"] for m in dead if m["id"] == welcome)
    smtp.refuse = None
    cli(world, "mail", "retry", str(welcome))
    await deliver(world, smtp)
    assert mail_rows(world, "welcome") == [("ana@example.org", "sent", "")]
    received(smtp, "ana@example.org", "Welcome to SIGit")


async def test_mail_retry_seals_again_a_notice_an_older_cli_sealed_with_an_empty_secret(world, smtp):
    """sigit-dvm 0.1's CLI sealed its notices with an empty code secret: dead on every worker.
    After the upgrade, ``mail retry`` makes such a dead letter sendable."""
    with immediate(world.conn):  # the row exactly as that CLI queued it
        notice = Mail(MailKind.ACCOUNT_DELETED, "ana@example.org", None, (("at", world.now),))
        repository.queue_mail(world.conn, notice, "0" * 32, None, world.now, seal=ParamsSeal(b""))
    await deliver(world, smtp)
    (row,) = mail_rows(world, "account_deleted")
    assert row[1] == "dead" and "do not open" in row[2]
    dead = json.loads(cli(world, "mail", "dead", "--json").stdout)
    mail_id = next(m["id"] for m in dead if m["kind"] == "account_deleted")
    out = json.loads(cli(world, "mail", "retry", str(mail_id), "--json").stdout)
    assert out == {"requeued": mail_id, "resealed": True}
    await deliver(world, smtp)
    assert mail_rows(world, "account_deleted") == [("ana@example.org", "sent", "")]
    received(smtp, "ana@example.org", "Your SIGit account was deleted")

"""The admin CLI as a subprocess, on a real database filled by real flows."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey
from dvm.store import database
from tests.support.flows import CODE_SECRET, Harness, make_service, new_client

SIGIT = Path(sys.executable).parent / "sigit-dvm"
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))


@pytest.fixture
def world(tmp_path):
    """A settings file, and a database with an activated user, a pending and a locked session."""
    (tmp_path / "code.secret").write_text(CODE_SECRET.decode())
    (tmp_path / "sigit-dvm.toml").write_text(
        '[store]\npath = "db.sqlite3"\n[daemon]\ncode_secret_file = "code.secret"\n'
    )
    # Real time: the CLI stamps what it writes with the real clock.
    h = Harness(database.connect(tmp_path / "db.sqlite3"), now=int(time.time()))
    ana = new_client(1)
    h.send(ana, "request_account", {"email": "ana@example.org"})
    h.send(ana, "verify_code", {"code": h.last_code("ana@example.org")})
    h.account = SecretKey.generate().pubkey_hex
    h.send(ana, "activate", {"pubkey": h.account, "backup": BACKUP})
    h.bo = new_client(2)
    h.send(h.bo, "request_account", {"email": "bo@example.org"})
    h.cy = new_client(3)
    h.send(h.cy, "request_account", {"email": "cy@example.org"})
    wrong = "000000" if h.last_code("cy@example.org") != "000000" else "111111"
    for _ in range(5):
        h.send(h.cy, "verify_code", {"code": wrong})
    h.dir = tmp_path
    yield h
    h.conn.close()


def cli(h, *args, check=True):
    out = subprocess.run(
        [str(SIGIT), "-c", str(h.dir / "sigit-dvm.toml"), "--actor", "alice", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_users_as_a_table_and_as_json(world):
    table = cli(world, "users").stdout
    assert table.splitlines()[0].split()[:4] == ["id", "email", "verified", "activated"]
    assert "ana@example.org" in table and "bo@example.org" in table
    rows = json.loads(cli(world, "users", "list", "--search", "ana", "--json").stdout)
    assert [(r["email"], r["activated"]) for r in rows] == [("ana@example.org", True)]
    shown = json.loads(cli(world, "users", "show", world.account, "--json").stdout)
    assert shown["email"] == "ana@example.org" and shown["backup_bytes"] == len(BACKUP)
    assert BACKUP not in cli(world, "users", "show", "ana@example.org").stdout  # never the backup itself
    missing = cli(world, "users", "show", "nobody@example.org", check=False)
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_sessions_list_filter_and_show_never_reveal_codes(world):
    rows = json.loads(cli(world, "sessions", "list", "--state", "locked", "--json").stdout)
    assert [(r["email"], r["attempts"], r["locked"]) for r in rows] == [("cy@example.org", 5, True)]
    pubkey = world.bo.key.pubkey_hex
    shown = cli(world, "sessions", "show", pubkey).stdout
    assert "pending" in shown and "code_expires_in_s" in shown
    everything = cli(world, "sessions", "--json").stdout + shown
    assert "code_hmac" not in everything
    assert world.last_code("bo@example.org") not in everything


def test_destructive_actions_need_yes_and_change_nothing_without_it(world):
    for args in (
        ("users", "delete", "bo@example.org"),
        ("users", "change-email", "ana@example.org", "new@example.org"),
        ("sessions", "purge", "--older-than", "0"),
        ("mail", "purge", "--older-than", "0"),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == 2 and "--yes" in out.stderr, args
    assert world.count("users") == 3 and world.count("sessions") == 3 and world.count("audit") == 0


def test_delete_user_erases_it_notifies_and_is_audited(world):
    cli(world, "users", "delete", "bo@example.org", "--yes")
    assert world.count("users", "email = 'bo@example.org'") == 0
    assert world.count("sessions", "pubkey = ?", world.bo.key.pubkey_hex) == 0
    assert world.count("mail", "kind = 'account_deleted' AND recipient = 'bo@example.org'") == 1
    (entry,) = json.loads(cli(world, "audit", "--json").stdout)
    assert (entry["actor"], entry["action"]) == ("alice", "delete-user")


def test_change_email_moves_the_account_and_tells_the_old_address(world):
    cli(world, "users", "change-email", "ana@example.org", "Ana.New@Example.org", "--yes")
    assert world.count("users", "email = 'ana.new@example.org'") == 1
    assert world.count("mail", "kind = 'email_changed' AND recipient = 'ana@example.org'") == 1
    taken = cli(world, "users", "change-email", "ana.new@example.org", "bo@example.org", "--yes", check=False)
    assert taken.returncode == 1 and "another account" in taken.stderr


def test_resend_code_and_unlock_issue_codes_that_work(world):
    cli(world, "sessions", "resend-code", world.bo.key.pubkey_hex)
    assert world.send(world.bo, "verify_code", {"code": world.last_code("bo@example.org")}).ok
    cli(world, "sessions", "unlock", world.cy.key.pubkey_hex)
    session = json.loads(cli(world, "sessions", "show", world.cy.key.pubkey_hex, "--json").stdout)
    assert (session["state"], session["attempts"]) == ("pending", 0)
    assert world.send(world.cy, "verify_code", {"code": world.last_code("cy@example.org")}).ok
    wrong_state = cli(world, "sessions", "unlock", world.bo.key.pubkey_hex, check=False)
    assert wrong_state.returncode == 1 and "not locked" in wrong_state.stderr
    assert [e["action"] for e in json.loads(cli(world, "audit", "--json").stdout)] == [
        "unlock-session",
        "resend-code",
    ]


def test_mail_queue_dead_letters_retry_and_purge(world):
    queued = json.loads(cli(world, "mail", "queue", "--json").stdout)
    assert {m["kind"] for m in queued} == {"signup_code", "welcome"}
    welcome = next(m["id"] for m in queued if m["kind"] == "welcome")
    code_mail = next(m["id"] for m in queued if m["kind"] == "signup_code")
    world.conn.execute(
        "UPDATE mail SET status = 'dead', last_error = '550 no' WHERE id IN (?, ?)", (welcome, code_mail)
    )
    dead = cli(world, "mail", "dead").stdout
    assert "550 no" in dead
    refused = cli(world, "mail", "retry", str(code_mail), check=False)
    assert refused.returncode == 1 and "resend-code" in refused.stderr
    cli(world, "mail", "retry", str(welcome))
    assert world.count("mail", "id = ? AND status = 'queued'", welcome) == 1
    world.conn.execute("UPDATE mail SET status = 'sent' WHERE id = ?", (welcome,))
    assert "purged 2 mail" in cli(world, "mail", "purge", "--older-than", "-100000000", "--yes").stdout


def test_events_and_stats(world):
    events = json.loads(cli(world, "events", "--outcome", "too_many_attempts", "--json").stdout)
    assert len(events) == 1 and events[0]["method"] == "verify_code"
    stats = json.loads(cli(world, "stats", "--days", "100000", "--json").stdout)
    (day,) = stats["days"]
    assert (day["signups"], day["verifications"], day["activations"], day["codes"]) == (3, 1, 1, 3)
    assert stats["failures"] == {"code_invalid": 4, "too_many_attempts": 1}
    assert stats["mail"]["queued"] == 4 and stats["users"] == 3 and stats["activated_users"] == 1
    assert "failures: code_invalid 4, too_many_attempts 1" in cli(world, "stats", "--days", "100000").stdout


def test_backup_is_a_consistent_copy_and_refuses_to_overwrite(world):
    target = world.dir / "copy.sqlite3"
    cli(world, "backup", str(target))
    copy = database.connect(target)
    assert copy.execute("SELECT count(*) FROM users").fetchone()[0] == 3
    copy.close()
    again = cli(world, "backup", str(target), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_cli_works_on_the_live_database_while_requests_are_written(world):
    stop = threading.Event()
    written = []

    def keep_writing():
        # Its own connection in its own thread, and its own random source (distinct Message-IDs).
        writer = Harness(database.connect(world.dir / "db.sqlite3"), make_service(seed=7), now=world.now)
        i = 0
        while not stop.is_set():
            i += 1
            writer.send(new_client(100 + i), "request_account", {"email": f"load{i}@example.org"})
            written.append(i)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for _ in range(3):
            assert "email" in cli(world, "users").stdout
            cli(world, "sessions", "purge", "--older-than", "999999", "--yes")
    finally:
        stop.set()
        thread.join()
    assert written  # the writer kept going while the CLI read and wrote

"""The admin CLI on a real database filled by real flows: output, options, prefixes, errors."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import re
import shlex
import sqlite3
import subprocess
import threading
from pathlib import Path

import click

from dvm.cli import cli as root
from dvm.cli import main
from dvm.mailer.kinds import COMMON, SPECS
from dvm.store import backends, database
from tests.support.admin_world import BACKUP, SIGIT, cli, deliver, process
from tests.support.flows import Harness, make_service, new_client

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_users_as_a_table_json_csv_and_json_lines(world):
    table = cli(world, "users", "list").stdout
    assert table.splitlines()[0].split()[:5] == ["id", "email", "verified", "activated", "suspended"]
    assert "ana@example.org" in table and "bo@example.org" in table
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((\d+ s ago|now)\)", table)  # ISO and age
    rows = json.loads(cli(world, "users", "list", "--search", "ana", "--json").stdout)
    assert [(r["email"], r["activated"], r["suspended"]) for r in rows] == [("ana@example.org", True, False)]
    assert ISO.match(rows[0]["created_at"])
    lines = cli(world, "users", "list", "--nl").stdout.splitlines()
    assert sorted(json.loads(line)["email"] for line in lines) == [
        "ana@example.org",
        "bo@example.org",
        "cy@example.org",
    ]
    parsed = list(csv.DictReader(io.StringIO(cli(world, "users", "list", "--csv").stdout)))
    assert len(parsed) == 3 and ISO.match(parsed[0]["created_at"]) and len(parsed[0]["id"]) == 32


def test_users_show_by_address_id_or_pubkey_never_shows_the_backup(world):
    shown = json.loads(cli(world, "users", "show", world.account, "--json").stdout)
    assert shown["email"] == "ana@example.org" and shown["backup_bytes"] == len(BACKUP)
    assert ISO.match(shown["created_at"]) and ISO.match(shown["last_request_at"])
    assert shown["last_login_at"] is None and shown["suspended"] is False
    assert ISO.match(shown["last_seen"])  # set at activation
    assert json.loads(cli(world, "users", "show", shown["id"][:8], "--json").stdout)["id"] == shown["id"]
    assert json.loads(cli(world, "users", "show", "ANA@Example.org", "--json").stdout)["id"] == shown["id"]
    text = cli(world, "users", "show", "ana@example.org").stdout
    assert BACKUP not in text and re.search(r"created_at\s+\d{4}-\d\d-\d\dT\S+Z \(", text)
    missing = cli(world, "users", "show", "nobody@example.org", check=False)
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_users_show_has_last_login_and_last_seen(world):
    laptop = new_client(9)
    world.now += 5
    assert world.send(laptop, "request_login", {"email": "ana@example.org"}).ok
    assert world.send(laptop, "verify_code", {"code": world.last_code("ana@example.org")}).ok
    shown = json.loads(cli(world, "users", "show", "ana@example.org", "--json").stdout)
    assert shown["last_login_at"] == shown["last_request_at"]
    assert shown["last_seen"] == shown["last_login_at"]  # the login is the latest it was seen
    assert shown["last_login_at"] > shown["created_at"]


def test_global_and_output_options_are_accepted_at_every_level(world):
    config = str(world.dir / "sigit-dvm.toml")
    out = process(world, "users", "delete", "bo@example.org", "--yes", "--actor", "alice", "-c", config)
    assert "deleted" in out.stdout
    out = process(world, "sessions", "--config", config, "--json", "list", "--actor", "bob")
    assert sorted(s["email"] for s in json.loads(out.stdout)) == ["ana@example.org", "cy@example.org"]
    (entry,) = json.loads(process(world, "audit", "--json", "list").stdout)
    assert (entry["actor"], entry["action"]) == ("alice", "delete-user")


def test_groups_have_help_and_no_default_action(world):
    bare = cli(world, "users", check=False)
    assert bare.returncode == 2 and "Commands:" in bare.stderr and "delete" in bare.stderr
    wrong = cli(world, "users", "--search", "hank", check=False)
    assert wrong.returncode == 2 and "--search" in wrong.stderr and "users --help" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_every_command_has_help_with_an_example():
    def walk(command: click.Command, path: list[str]):
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    for path, command in walk(root, []):
        assert "Example:" in (command.help or ""), path
        with click.Context(command, info_name=" ".join(["sigit-dvm", *path])) as ctx:
            help_text = command.get_help(ctx)
        assert "--help" in help_text and ("--config" in help_text), path


def test_sessions_list_filter_and_show_by_prefix_never_reveal_codes(world):
    rows = json.loads(cli(world, "sessions", "list", "--state", "locked", "--json").stdout)
    assert [(r["email"], r["attempts"], r["locked"]) for r in rows] == [("cy@example.org", 5, True)]
    pubkey = world.bo.key.pubkey_hex
    table = cli(world, "sessions", "list").stdout
    assert pubkey[:16] in table and pubkey not in table  # tables shorten keys...
    shown = cli(world, "sessions", "show", pubkey[:16]).stdout  # ...and the short form works
    assert "pending" in shown and "code_expires_in_s" in shown and pubkey in shown
    assert json.loads(cli(world, "sessions", "show", pubkey[:8], "--json").stdout)["pubkey"] == pubkey
    short = cli(world, "sessions", "show", pubkey[:7], check=False)
    assert short.returncode == 1 and "at least 8" in short.stderr
    everything = cli(world, "sessions", "list", "--json").stdout + shown
    assert "code_hmac" not in everything
    assert world.last_code("bo@example.org") not in everything


def test_an_ambiguous_prefix_is_refused_with_the_candidates(world):
    user_id = json.loads(cli(world, "users", "show", "bo@example.org", "--json").stdout)["id"]
    for key in ("abcdef0123456789" + "0" * 48, "abcdef0123456789" + "1" * 48):
        world.conn.execute(
            "INSERT INTO sessions (pubkey, user_id, purpose, state, code_hmac, code_sent_at, "
            "code_expires_at, attempts, verified_at, created_at, updated_at) "
            "VALUES (?, ?, 'signup', 'consumed', '', 1, 2, 0, NULL, 1, 1)",
            (key, user_id),
        )
    out = cli(world, "sessions", "show", "abcdef01", check=False)
    assert out.returncode == 1 and "matches several sessions" in out.stderr
    assert "abcdef0123456789000" in out.stderr and "abcdef0123456789111" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "0" * 48 in cli(world, "sessions", "show", "abcdef01234567890").stdout


def test_destructive_actions_need_yes_and_change_nothing_without_it(world):
    for args in (
        ("users", "delete", "bo@example.org"),
        ("users", "change-email", "ana@example.org", "new@example.org"),
        ("users", "restore-backup", "ana@example.org"),
        ("sessions", "purge", "--older-than", "0"),
        ("mail", "purge", "--older-than", "0"),
        ("audit", "purge", "--older-than", "0"),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == 2 and "--yes" in out.stderr, args
    assert world.count("users") == 3 and world.count("sessions") == 3 and world.count("audit") == 0


def test_resend_code_and_unlock_issue_codes_that_work(world):
    cli(world, "sessions", "resend-code", world.bo.key.pubkey_hex[:12])
    assert world.send(world.bo, "verify_code", {"code": world.last_code("bo@example.org")}).ok
    cli(world, "sessions", "unlock", world.cy.key.pubkey_hex)
    session = json.loads(cli(world, "sessions", "show", world.cy.key.pubkey_hex, "--json").stdout)
    assert (session["state"], session["attempts"]) == ("pending", 0)
    assert world.send(world.cy, "verify_code", {"code": world.last_code("cy@example.org")}).ok
    wrong_state = cli(world, "sessions", "unlock", world.bo.key.pubkey_hex, check=False)
    assert wrong_state.returncode == 1 and "not locked" in wrong_state.stderr
    assert [e["action"] for e in json.loads(cli(world, "audit", "list", "--json").stdout)] == [
        "unlock-session",
        "resend-code",
    ]


async def test_mail_queue_dead_letters_sent_retry_and_purge(world, smtp):
    queued = json.loads(cli(world, "mail", "queue", "--json").stdout)
    assert {m["kind"] for m in queued} == {"signup_code", "welcome"}
    assert all(ISO.match(m["next_attempt_at"]) and "sent_at" not in m for m in queued)
    welcome = next(m["id"] for m in queued if m["kind"] == "welcome")
    code_mail = next(m["id"] for m in queued if m["kind"] == "signup_code")
    smtp.refuse = "550 no such user"
    await deliver(world, smtp)  # the daemon's worker: every mail refused for good
    dead = json.loads(cli(world, "mail", "dead", "--json").stdout)
    assert {m["id"] for m in dead} >= {welcome, code_mail}
    assert all("550 no such user" in m["last_error"] and "next_attempt_at" not in m for m in dead)
    assert "550 no such user" in cli(world, "mail", "dead").stdout
    refused = cli(world, "mail", "retry", str(code_mail), check=False)
    assert refused.returncode == 1 and "resend-code" in refused.stderr
    cli(world, "mail", "retry", str(welcome))
    assert world.count("mail", "id = ? AND status = 'queued'", welcome) == 1
    smtp.refuse = None
    await deliver(world, smtp)
    sent = cli(world, "mail", "sent").stdout
    assert "sent_at" in sent.splitlines()[0] and "next_attempt_at" not in sent
    (row,) = json.loads(cli(world, "mail", "sent", "--json").stdout)
    assert row["id"] == welcome and ISO.match(row["sent_at"]) and "next_attempt_at" not in row
    purged = cli(world, "mail", "purge", "--older-than", "0", "--yes").stdout
    assert f"purged {len(dead)} mail" in purged


def test_events_and_stats(world):
    events = json.loads(cli(world, "events", "--outcome", "too_many_attempts", "--json").stdout)
    assert len(events) == 1 and events[0]["method"] == "verify_code" and ISO.match(events[0]["processed_at"])
    bogus = cli(world, "events", "--method", "bogus", check=False)
    assert bogus.returncode == 2 and "bogus" in bogus.stderr and "request_account" in bogus.stderr
    stats = json.loads(cli(world, "stats", "--days", "100000", "--json").stdout)
    (day,) = stats["days"]
    assert (day["signups"], day["codes_verified"], day["activations"], day["codes_sent"]) == (3, 1, 1, 3)
    assert day["login_requests"] == 0 and day["blocked"] == 0
    assert stats["failures"] == {"code_invalid": 4, "too_many_attempts": 1}
    assert stats["mail"]["queued"] == 4 and stats["users"] == 3 and stats["activated_users"] == 1
    assert stats["blocks"] == {"address": 0, "domain": 0} and stats["suspended_users"] == 0
    assert "failures: code_invalid 4, too_many_attempts 1" in cli(world, "stats", "--days", "100000").stdout


def test_backup_is_a_private_consistent_copy_and_refuses_to_overwrite(world_sqlite):
    world = world_sqlite
    target = world.dir / "copy.sqlite3"
    cli(world, "backup", str(target))
    assert target.stat().st_mode & 0o777 == 0o600
    copy = database.connect(target)
    assert copy.execute("SELECT count(*) FROM users").fetchone()[0] == 3
    copy.close()
    again = cli(world, "backup", str(target), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_errors_are_one_line_without_traceback(world):
    for args, code in (
        (("users", "show", "zz"), 1),
        (("mail", "retry", "999"), 1),
        (("mail", "retry", "x"), 2),
        (("sessions", "purge", "--older-than", "soon", "--yes"), 2),
        (("blocks", "remove", "nothing.example"), 1),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == code, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, args
    missing = process(world, "-c", str(world.dir / "nope.toml"), "users", "list", check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_output_cut_short_by_head_is_no_error(world):
    with database.immediate(world.conn):
        world.conn.executemany(
            "INSERT INTO users (id, email, verified, activated, created_at, updated_at) "
            "VALUES (?, ?, 0, 0, 1, 1)",
            [(f"{i:032x}", f"load{i}@example.org") for i in range(3000)],
        )
    out = subprocess.run(
        f"'{SIGIT}' users list --limit 5000 | head -n 3",
        shell=True,
        capture_output=True,
        text=True,
        cwd=world.dir,
        timeout=60,
    )
    assert len(out.stdout.splitlines()) == 3
    assert out.stderr == ""


def test_cli_works_on_the_live_database_while_requests_are_written(world):
    stop = threading.Event()
    written = []

    def keep_writing():
        # Its own connection in its own thread, and its own random source (distinct Message-IDs).
        conn = backends.connect_any(world.url, world.dir / "db.sqlite3")
        writer = Harness(conn, make_service(seed=7), now=world.now)
        i = 0
        while not stop.is_set():
            i += 1
            writer.send(new_client(100 + i), "request_account", {"email": f"load{i}@example.org"})
            written.append(i)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for _ in range(3):
            assert "email" in process(world, "users", "list").stdout
            process(world, "sessions", "purge", "--older-than", "999999", "--yes")
    finally:
        stop.set()
        thread.join()
    assert written  # the writer kept going while the CLI read and wrote


def test_the_operations_guide_admin_examples_run(world, monkeypatch):
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = guide.split("## The admin CLI\n", 1)[1].split("\n## ", 1)[0]
    lines = [
        line
        for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.startswith("sigit-dvm ")
    ]
    assert len(lines) >= 20
    monkeypatch.chdir(world.dir)
    for line in lines:
        out = cli(world, *shlex.split(line)[1:], check=False)
        assert out.returncode == 0, (line, out.stderr)
    assert json.loads(cli(world, "users", "erased", "bo@example.org", "--json").stdout)["erased"]


# --- the schema: admin commands never change it; the settings file they need ---------------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_admin_commands_refuse_an_older_schema_and_leave_it_as_it_is(tmp_path, capsys, monkeypatch):
    """A newer CLI moved a running older daemon's database forward (issue 25): the daemon then
    refused it. Now only ``migrate`` (and the daemon) change the schema."""
    old = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(old)
    conn.executescript((FIXTURES / "schema_v1.sql").read_text())
    conn.close()
    config = tmp_path / "sigit-dvm.toml"
    config.write_text('[store]\npath = "db.sqlite3"\n')
    for args in (
        ("users", "list"),
        ("stats",),
        ("mail", "queue"),
        ("audit", "list"),
        ("backup", "b.sqlite3"),
    ):
        assert main(["-c", str(config), *args]) == 1, args
        err = capsys.readouterr().err
        assert "schema 1, older than" in err and "sigit-dvm migrate" in err, args
        assert len(err.strip().splitlines()) == 1
    raw = sqlite3.connect(old)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    raw.close()
    assert main(["-c", str(config), "migrate"]) == 0
    capsys.readouterr()
    assert main(["-c", str(config), "users", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_without_a_settings_file_nothing_is_created_and_the_file_is_asked_for(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGIT_CONFIG", raising=False)
    for args in (("migrate",), ("users", "list"), ("stats",), ("backup", "b.sqlite3")):
        assert main(list(args)) == 2, args
        err = capsys.readouterr().err
        assert "no settings file" in err and "--config" in err, args
    assert list(tmp_path.iterdir()) == []


def test_the_version_comes_from_git_and_is_the_installed_one(tmp_path):
    """``--version`` is the installed distribution's, which setuptools-scm derived from git: a
    release tag ``vX.Y.Z``, or the next version's ``.devN+g<commit>`` between tags (never the
    0.1.0 that used to stay put through 138 commits)."""
    out = subprocess.run([str(SIGIT), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0
    version = importlib.metadata.version("sigit-dvm")
    assert out.stdout == f"sigit-dvm {version}\n"
    if (Path(__file__).resolve().parents[2] / ".git").exists():  # a checkout, not an archive
        assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+\+g[0-9a-f]{7,}(\.d\d{8})?)?", version), version


# --- mail preview and the templates' documentation ----------------------------------------------


def preview(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIGIT), "mail", "preview", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def test_mail_preview_renders_every_kind_in_every_language_without_a_database(tmp_path):
    for spec in SPECS.values():
        for lang in ((), ("--lang", "de")):
            out = preview(tmp_path, spec.kind.value, *lang)
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("Subject: ") and "$" not in out.stdout, (spec.kind, lang)
    assert "Ihr Code lautet" in preview(tmp_path, "signup_code", "--lang", "de-AT").stdout
    html = preview(tmp_path, "login_code", "--html").stdout
    assert html.startswith("<!DOCTYPE html>") and "123456" in html
    data = json.loads(preview(tmp_path, "welcome", "--lang", "fr", "--json").stdout)
    assert data["templates"] == "default" and data["subject"] == "Welcome to SIGit"
    fallback = preview(tmp_path, "welcome", "--lang", "fr")
    assert "no fr templates here: showing the default ones" in fallback.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_mail_preview_uses_the_sites_templates_and_refuses_bad_input(tmp_path):
    (tmp_path / "tpl" / "pt-BR").mkdir(parents=True)
    (tmp_path / "tpl" / "pt-BR" / "signup_code.txt").write_text("Subject: Seu código\n\nCódigo: $code\n")
    (tmp_path / "tpl" / "pt-BR" / "signup_code.html").write_text("<p>$code</p>\n")
    (tmp_path / "sigit-dvm.toml").write_text(
        '[mail]\ntemplates_dir = "tpl"\nsupport_url = "https://h.example"\n'
    )
    out = preview(tmp_path, "signup_code", "--lang", "pt-BR", "--to", "ana@example.org")
    assert out.returncode == 0 and out.stdout == "Subject: Seu código\n\nCódigo: 123456\n"
    assert "Need help? https://h.example" in preview(tmp_path, "welcome").stdout
    for args in (("nope",), ("welcome", "--lang", "de_DE"), ("welcome", "--lang", "a" * 40)):
        bad = preview(tmp_path, *args)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, args


def test_the_operations_guide_lists_every_mail_kind_with_its_placeholders():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = guide.split("## Mail templates", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = (
                set(re.findall(r"`\$(\w+)`", cells[2])),
                set(re.findall(r"`\$(\w+)`", cells[3])),
            )
    assert set(rows) == {k.value for k in SPECS}
    for kind, spec in SPECS.items():
        assert rows[kind.value] == (set(spec.given - COMMON), set(spec.required)), kind


# --- rough edges (issue 25, item 8) -------------------------------------------------------------


def test_counts_and_durations_below_their_range_are_refused_with_exit_2(world):
    for args in (
        ("stats", "--days", "-3"),
        ("stats", "--days", "0"),
        ("users", "list", "--limit", "0"),
        ("mail", "retry", "-1"),
        ("sessions", "purge", "--older-than", "-5", "--yes"),
        ("mail", "purge", "--older-than", "-1d", "--yes"),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    assert world.count("sessions") == 3 and world.count("audit") == 0


def test_two_output_formats_are_refused(world):
    for args in (
        ("users", "list", "--json", "--csv"),
        ("sessions", "--json", "list", "--csv"),
        ("stats", "--nl", "--json"),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == 2 and "give one output format" in out.stderr, args
    assert json.loads(cli(world, "sessions", "--json", "list", "--json").stdout)


def test_invalid_values_exit_2_and_change_nothing(world):
    for args in (
        ("users", "change-email", "bo@example.org", "spam.example", "--yes"),
        ("blocks", "add", "not an address!"),
        ("blocks", "remove", "@@"),
        ("users", "erased", "nobody@"),
        ("users", "show", "not an address@"),
    ):
        out = cli(world, *args, check=False)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert world.count("audit") == 0 and world.count("blocks") == 0


def test_a_bad_session_prefix_is_refused_before_any_secret_is_read(world):
    (world.dir / "code.secret").unlink()
    out = cli(world, "sessions", "unlock", "1", check=False)
    assert out.returncode == 1 and "at least 8" in out.stderr and "code_secret" not in out.stderr


def test_json_says_null_for_what_is_absent_never_an_empty_string(world):
    cli(world, "blocks", "add", "spam.example")
    bo = json.loads(cli(world, "users", "show", "bo@example.org", "--json").stdout)
    assert bo["pubkey"] is None and bo["pending_email"] is None and bo["grace_deadline"] is None
    (block,) = json.loads(cli(world, "blocks", "list", "--json").stdout)
    assert block["reason"] is None
    for command in (("users", "list"), ("sessions", "list"), ("mail", "queue"), ("audit", "list")):
        assert '""' not in cli(world, *command, "--json").stdout, command
    assert "-" in cli(world, "users", "show", "bo@example.org").stdout.split("pubkey", 1)[1].splitlines()[0]


def test_group_help_shows_each_commands_whole_first_sentence(world):
    for group in ("users", "sessions", "mail", "blocks", "audit", "requests"):
        out = process(world, group, "--help", check=False)
        assert "..." not in out.stdout.split("Commands:")[1], group
    out = subprocess.run([str(SIGIT), "--help"], capture_output=True, text=True, env={"COLUMNS": "80"})
    assert "..." not in out.stdout.split("Commands:")[1]
    assert "Per UTC day: signups, codes verified, activations, login requests, codes sent, requests" in (
        " ".join(out.stdout.split())
    )


def test_a_sqlite_backup_put_in_place_of_the_database_is_the_database(world_sqlite):
    """The guide's SQLite restore: the backup file replaces the live one (its -wal and -shm
    removed) and is the same database."""
    world = world_sqlite
    cli(world, "backup", str(world.dir / "copy.sqlite3"))
    before = json.loads(cli(world, "users", "list", "--json").stdout)
    world.conn.close()
    live = world.dir / "db.sqlite3"
    live.rename(world.dir / "db.sqlite3.broken")
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    (world.dir / "copy.sqlite3").rename(live)
    assert json.loads(cli(world, "users", "list", "--json").stdout) == before
    assert "already current" in cli(world, "migrate").stdout
    world.conn = database.connect(live)  # for the fixture's teardown

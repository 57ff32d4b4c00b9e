"""The account service over a real database: flows, replays, concurrency, crashes.

Tests taking ``h`` are the store's contract: they run on both backends (a SQLite file and a
PostgreSQL database, ``store_url`` in conftest). The rest are about SQLite's file itself."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from dvm.cli import main
from dvm.daemon import WRITE_BEHIND_S
from dvm.nostr import bech32
from dvm.nostr.event import parse_event_json
from dvm.nostr.keys import SecretKey
from dvm.outbox import ReplyMark
from dvm.rules import ServiceRules
from dvm.store import database, memo, repository
from dvm.store.writebehind import WriteBehind
from tests.support.flows import T0, Harness, commit_one, dump, mail_params, make_service, new_client

ROOT = Path(__file__).resolve().parents[2]
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "sigit.sqlite3"


@pytest.fixture
def h(connect_store):
    return Harness(connect_store())


@pytest.fixture
def h_sqlite(db_path):
    conn = database.connect(db_path)
    yield Harness(conn)
    conn.close()


def signup(h: Harness, client, email="Ana@Example.org", account=None) -> tuple[str, str]:
    """The seed flow for ``email``; ``account`` (the user's real key) seals the activation."""
    assert h.send(client, "request_account", {"email": email}).ok
    entropy = h.send(client, "verify_code", {"code": h.last_code(email.lower())}).result["entropy"]
    account = account or SecretKey.generate()
    assert h.send(client, "activate", {"pubkey": account.pubkey_hex, "backup": BACKUP}, seal=account).ok
    return entropy, account.pubkey_hex


def test_signup_then_login_on_a_new_device_returns_entropy_and_backup(h):
    browser = new_client(1)
    entropy, account = signup(h, browser)
    user = h.conn.execute("SELECT * FROM users").fetchone()
    assert (user["email"], user["verified"], user["activated"], user["pubkey"], user["bkp"]) == (
        "ana@example.org",
        1,
        1,
        account,
        BACKUP,
    )
    assert user["entropy"] == entropy
    laptop = new_client(2)
    assert h.send(laptop, "request_login", {"email": "ANA@example.org"}).ok
    reply = h.send(laptop, "verify_code", {"code": h.last_code("ana@example.org")})
    assert reply.result == {"entropy": entropy, "pubkey": account, "backup": BACKUP}
    kinds = [r[0] for r in h.conn.execute("SELECT kind FROM mail ORDER BY id")]
    assert kinds == ["signup_code", "welcome", "login_code", "login_notice"]


def test_codes_are_never_stored_in_clear_in_sessions(h):
    client = new_client(3)
    h.send(client, "request_account", {"email": "bo@example.org"})
    code = h.last_code("bo@example.org")
    sessions = [str(tuple(row)) for row in h.conn.execute("SELECT * FROM sessions")]
    assert sessions and not any(code in row for row in sessions)
    assert code not in dump(h.conn)  # nor anywhere else: the mail's params are sealed


def test_existing_account_gets_email_taken_and_nothing_changes(h):
    signup(h, new_client(1))
    before = [h.count(t) for t in ("users", "sessions", "mail", "code_sends")]
    reply = h.send(new_client(2), "request_account", {"email": "ana@example.org"})
    assert reply.code == "email_taken"
    assert [h.count(t) for t in ("users", "sessions", "mail", "code_sends")] == before


def test_the_same_event_twice_is_answered_from_storage_and_decided_once(h):
    client = new_client(1)
    event = h.event(client, "request_account", {"email": "ana@example.org"})
    first, _ = h.send_event(client, event)
    h.now += 5
    second, _ = h.send_event(client, event)
    assert (second.replayed, second.reply, second.outcome) == (True, first.reply, "ok")
    assert h.count("mail") == 1 and h.count("requests") == 1


def test_a_new_event_for_the_same_pending_signup_sends_no_second_email(h):
    client = new_client(1)
    h.send(client, "request_account", {"email": "ana@example.org"})
    h.now += 1
    assert h.send(client, "request_account", {"email": "ana@example.org"}).ok
    assert h.count("mail") == 1 and h.count("requests") == 2


def test_wrong_codes_lock_the_session_and_the_right_code_then_fails(h):
    client = new_client(1)
    h.send(client, "request_account", {"email": "ana@example.org"})
    code = h.last_code("ana@example.org")
    wrong = "000000" if code != "000000" else "111111"
    codes = [h.send(client, "verify_code", {"code": wrong}).code for _ in range(5)]
    assert codes == ["code_invalid"] * 4 + ["too_many_attempts"]
    assert h.send(client, "verify_code", {"code": code}).code == "too_many_attempts"
    assert h.count("users", "verified = 1") == 0


def test_refusals_at_the_edge_are_recorded_and_answered(h):
    client = new_client(1)
    event = h.event(client, "request_account", {"email": "nope"})
    handled, reply = h.send_event(client, event)
    assert reply.code == "invalid_email" and handled.outcome == "invalid_email"
    assert h.count("requests", "outcome = 'invalid_email'") == 1
    assert h.count("users") == 0


def _signup_worker(args: tuple[str, list[str], int, int]) -> list[str]:
    """Child process: its own connection and service, one email, many ephemeral keys."""
    path, events, now, seed = args
    conn = database.connect(path)
    service = make_service(seed=seed)
    outcomes = []
    for raw in events:
        outcomes.append(commit_one(service, conn, parse_event_json(raw), now).outcome)
    conn.close()
    return outcomes


def test_concurrent_requests_for_one_email_from_four_processes_create_one_user(db_path):
    database.connect(db_path).close()
    h = Harness(database.connect(db_path))
    batches = [
        [
            h.event(new_client(10 * p + i), "request_account", {"email": "race@example.org"}).to_json()
            for i in range(5)
        ]
        for p in range(4)
    ]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        outcomes = [
            o
            for chunk in pool.map(
                _signup_worker, [(str(db_path), b, T0, seed) for seed, b in enumerate(batches)]
            )
            for o in chunk
        ]
    # 20 keys, one address, in the same second: one user and one code mailed, that every
    # session redeems; nobody is refused.
    assert h.count("users", "email = 'race@example.org'") == 1
    assert outcomes.count("ok") == 20
    assert (h.count("codes"), h.count("mail"), h.count("sessions")) == (1, 1, 20)
    assert h.count("requests") == 20


CRASH_SCRIPT = """
import os, signal, sys
from dvm.nostr.event import parse_event_json
from dvm.store import database, memo, repository
from tests.support.flows import commit_one, make_service

path, point, raw, now = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real = getattr(repository, point)

def write_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction: after this write, before COMMIT

setattr(repository, point, write_then_die)
conn = database.connect(path)
service = make_service()
commit_one(service, conn, parse_event_json(raw), now)
"""


@pytest.mark.parametrize("point", ["apply_writes", "queue_mail", "record_request"])
def test_kill_9_between_decide_and_commit_leaves_none_of_the_request(db_path, point):
    h = Harness(database.connect(db_path))
    client = new_client(1)
    event = h.event(client, "request_account", {"email": "ana@example.org"})
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(db_path), point, event.to_json(), str(T0)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    h.conn.close()
    h.conn = database.connect(db_path)
    assert [h.count(t) for t in ("users", "sessions", "code_sends", "mail", "requests")] == [0] * 5
    # The same event, handled again after the crash, is decided exactly once, completely.
    handled, reply = h.send_event(client, event)
    assert reply.ok and not handled.replayed
    assert [h.count(t) for t in ("users", "sessions", "code_sends", "mail", "requests")] == [1] * 5


def test_batched_requests_see_each_others_writes_and_fail_alone(h):
    a, b = new_client(1), new_client(2)
    for client, email in ((a, "a@example.org"), (b, "b@example.org")):
        h.send(client, "request_account", {"email": email})
        h.send(client, "verify_code", {"code": h.last_code(email)})
    shared = SecretKey.generate()
    params = {"pubkey": shared.pubkey_hex, "backup": BACKUP}
    events = [h.event(c, "activate", params, seal=shared) for c in (a, b)]
    results = h.service.commit(h.conn, [h.open(e) for e in events], h.now)
    assert [r.outcome for r in results] == ["ok", "pubkey_taken"]
    assert h.count("users", "activated = 1") == 1


def test_bookkeeping_rides_in_the_batch_transaction_and_rolls_back_with_it(h):
    first = h.event(new_client(1), "request_account", {"email": "a@example.org"})
    h.service.commit(h.conn, [h.open(first)], h.now)
    marks = (ReplyMark(first.id, True, h.now),)
    second = h.event(new_client(2), "request_account", {"email": "b@example.org"})
    h.service.commit(h.conn, [h.open(second)], h.now, bookkeeping=marks)
    assert h.count("requests", "published_at IS NOT NULL") == 1
    assert h.count("requests") == 2

    # The disk fills up (SQLite) or the server turns read-only (PostgreSQL): the next batch
    # fails as a whole, and its bookkeeping with it.
    if database.dialect(h.conn) == "sqlite":
        pages = h.conn.execute("PRAGMA page_count").fetchone()[0]
        h.conn.execute(f"PRAGMA max_page_count = {pages}")
    else:
        h.conn.execute("SET default_transaction_read_only = on")
    thirds = [
        h.event(new_client(3 + i), "request_account", {"email": f"c{i}@example.org"}) for i in range(40)
    ]
    with pytest.raises(database.DATABASE_ERRORS):
        h.service.commit(
            h.conn, [h.open(e) for e in thirds], h.now, bookkeeping=(ReplyMark(second.id, True, h.now),)
        )
    assert h.count("requests", "published_at IS NOT NULL") == 1  # nothing of that batch stayed
    assert h.count("requests") == 2


def test_new_database_gets_the_current_schema_and_newer_ones_are_refused(db_path):
    conn = database.connect(db_path)
    assert database.user_version(conn) == database.SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {database.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(database.StoreError, match="newer"):
        database.connect(db_path)


def test_schema_sql_at_the_root_is_the_packaged_schema():
    assert (ROOT / "schema.sql").read_text() == database.schema_sql()


def test_database_run_performs_a_whole_transaction_in_one_call(db_path):
    async def main():
        db = await database.Database(db_path).open()
        try:
            return await db.run(lambda conn: json.dumps(conn.execute("PRAGMA journal_mode").fetchone()[0]))
        finally:
            await db.close()

    assert asyncio.run(main()) == '"wal"'


async def test_the_daemon_connection_waits_briefly_for_another_process_lock_then_fails(db_path):
    """Its transactions run on the event loop: a lock held elsewhere stalls it at most 250 ms,
    then the caller's retry takes over. The CLI's connections keep waiting 5 s."""

    def write(conn: sqlite3.Connection) -> None:
        with database.immediate(conn):
            conn.execute("DELETE FROM audit")

    db = await database.Database(db_path).open()
    cli = database.connect(db_path)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert await db.run(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == 250
        assert cli.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await db.run(write)
        blocker.execute("ROLLBACK")
        await db.run(write)  # free again: the retry goes through
    finally:
        blocker.close()
        cli.close()
        await db.close()


async def test_a_slow_database_call_is_logged_since_the_event_loop_waited_for_it(db_path, caplog):
    db = await database.Database(db_path).open()
    try:
        await db.run(lambda c: c.execute("SELECT 1"))
        assert "slow database call" not in caplog.text
        await db.run(partial(lambda c, s: time.sleep(s), s=database.SLOW_CALL_S + 0.05))
        assert "slow database call" in caplog.text and "the event loop waited" in caplog.text
    finally:
        await db.close()


def test_a_new_database_and_its_wal_are_readable_by_their_owner_only(db_path):
    conn = database.connect(db_path)
    with database.immediate(conn):
        conn.execute("INSERT INTO audit (at, actor, action, target) VALUES (1, 'a', 'b', 'c')")
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    conn.close()


def test_a_version_1_database_migrates_to_the_current_schema_keeping_its_rows(tmp_path):
    old = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(old)
    conn.executescript((ROOT / "tests" / "fixtures" / "schema_v1.sql").read_text())
    conn.execute("INSERT INTO users VALUES ('u1', 'a@example.org', 1, 1, 'e', 'p', 'b', 1, 1)")
    conn.execute("INSERT INTO sessions VALUES ('k', 'u1', 'signup', 'consumed', '', 1, 2, 0, 1, 1, 1)")
    conn.commit()
    conn.close()
    migrated = database.connect(old)
    fresh = database.connect(tmp_path / "fresh.sqlite3")

    def shape(c):
        tables = [
            r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        columns = {t: [r[1:3] for r in c.execute(f"PRAGMA table_info({t})")] for t in tables}
        indexes = sorted(
            r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        )
        return tables, {t: sorted(cols) for t, cols in columns.items()}, indexes

    assert database.user_version(migrated) == database.SCHEMA_VERSION == 9
    assert shape(migrated) == shape(fresh)
    assert [tuple(r) for r in migrated.execute("SELECT email, pending_email, notify_login FROM users")] == [
        ("a@example.org", "", 1)
    ]
    assert [tuple(r) for r in migrated.execute("SELECT purpose, state FROM sessions")] == [
        ("signup", "consumed")
    ]
    for key, purpose in (("k2", "email_change"), ("k3", "register")):  # allowed after the migration
        migrated.execute(
            "INSERT INTO sessions VALUES "
            "(?, 'u1', ?, 'pending', 'h', 1, 2, 0, NULL, 1, 1, '', 0, NULL, '', '', 0, '')",
            (key, purpose),
        )
    # An account activated before last_seen existed counts as seen (its last change, or login).
    assert migrated.execute("SELECT last_seen FROM users").fetchone()[0] == 1


def test_email_change_and_deletion_through_the_store(h):
    browser = new_client(1)
    owner = SecretKey.generate()  # the user's real key, made by the browser before activation
    signup(h, browser, account=owner)
    from dvm.nostr.encryption import Encryptor

    me = Encryptor(owner)
    assert h.send(me, "change_email", {"email": "New@Example.org"}).ok
    # A pending change reserves nothing: the address's owner could still sign up with it.
    assert h.send(me, "status").result["pending_email"] == "new@example.org"
    reply = h.send(me, "confirm_email", {"code": h.last_code("new@example.org")})
    assert reply.result == {"email": "new@example.org"}
    kinds = [
        r[0] for r in h.conn.execute("SELECT kind || ':' || recipient FROM mail WHERE id > 2 ORDER BY id")
    ]
    assert kinds == [
        "email_change_code:new@example.org",
        "email_change_notice:ana@example.org",
        "email_changed:ana@example.org",
    ]
    assert h.send(me, "request_deletion").ok
    stored, token = h.conn.execute(
        "SELECT params, message_id FROM mail WHERE kind = 'deletion_code'"
    ).fetchone()
    assert h.send(me, "delete_account", {"code": mail_params(stored, token)["code"]}).ok
    assert [h.count(t) for t in ("users", "sessions")] == [0, 0]
    # Only the deletion notice is left in the mail table for this address; it is not tied to the user.
    assert [tuple(r) for r in h.conn.execute("SELECT kind, user_id FROM mail")] == [("account_deleted", None)]
    assert h.send(me, "status").code == "unknown_account"


def published(db_path) -> list[int | None]:
    conn = sqlite3.connect(db_path)
    try:
        return [r[0] for r in conn.execute("SELECT published_at FROM requests ORDER BY event_id")]
    finally:
        conn.close()


async def test_write_behind_keeps_marks_the_database_refuses_and_writes_them_later(h_sqlite, db_path):
    event = h_sqlite.event(new_client(1), "request_account", {"email": "a@example.org"})
    h_sqlite.send_event(new_client(1), event)
    db = await database.Database(db_path).open()
    await db.run(lambda conn: conn.execute("PRAGMA busy_timeout = 50"))
    later = WriteBehind(db, delay_s=0.05)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        later.add([ReplyMark(event.id, True, T0)])
        await asyncio.sleep(0.3)
        assert later.pending == (ReplyMark(event.id, True, T0),)  # still queued after the refused write
        blocker.execute("ROLLBACK")
        await asyncio.sleep(1.5)  # the retry comes within RETRY_S
        assert later.pending == ()
        assert published(db_path) == [T0]
    finally:
        blocker.close()
        await later.close()
        await db.close()


async def test_write_behind_marks_wait_for_a_transaction_then_flush_on_their_own(h_sqlite, db_path):
    h = h_sqlite
    events = [h.event(new_client(i), "request_account", {"email": f"w{i}@example.org"}) for i in range(2)]
    for i, event in enumerate(events):
        h_sqlite.send_event(new_client(i), event)
    db = await database.Database(db_path).open()
    later = WriteBehind(db, delay_s=0.2)
    try:
        later.add([ReplyMark(events[0].id, True, T0)])
        assert published(db_path) == [None, None]  # not yet written
        await asyncio.sleep(0.5)
        assert sorted(published(db_path), key=str) == sorted([T0, None], key=str)  # by the timer
        # Taken by a caller, the marks go into the caller's transaction instead.
        later.add([ReplyMark(events[1].id, True, T0 + 1)])
        along = later.take()
        assert along == (ReplyMark(events[1].id, True, T0 + 1),) and later.take() is None
        await db.run(lambda conn: h_sqlite.service.commit(conn, [], T0, bookkeeping=along))
        assert sorted(published(db_path)) == [T0, T0 + 1]
    finally:
        await later.close()
        await db.close()


def test_the_daemons_write_behind_delay_never_lets_a_reply_be_republished_meanwhile():
    """A reply's mark waits up to WRITE_BEHIND_S for a batch; the retry loop must not take the
    reply for an unpublished one before then (it would publish it twice, harmlessly, for nothing)."""
    assert ServiceRules().publish_grace_s >= WRITE_BEHIND_S * 10


class _RecordingConnection(sqlite3.Connection):
    """Keeps every statement dvm's code runs, with its parameters, to ask SQLite how it would run
    them (the test's own lookups are left out)."""

    statements: list[tuple[str, tuple | None]]

    def _keep(self, sql: str, parameters: tuple | None) -> None:
        if sys._getframe(2).f_globals["__name__"].startswith("dvm."):
            self.statements.append((sql, parameters))

    def execute(self, sql, parameters=(), /):  # type: ignore[override]
        self._keep(sql, tuple(parameters))
        return super().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):  # type: ignore[override]
        rows = list(seq_of_parameters)
        self._keep(sql, tuple(rows[0]) if rows else None)
        return super().executemany(sql, rows)


def test_no_statement_of_the_request_or_delivery_paths_scans_a_whole_table(db_path, monkeypatch):
    """Every statement the service, the reply outbox and the mail worker run is planned through an
    index (or a partial index over the rows still to do), so a request costs the same with a
    million users as with ten. Admin listings are not on these paths and may scan."""
    statements: list[tuple[str, tuple | None]] = []
    connect = sqlite3.connect

    def recording(*args, **kwargs):
        conn = connect(*args, factory=_RecordingConnection, **kwargs)
        conn.statements = statements
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording)
    from dvm.mailer import outbox
    from dvm.nostr.encryption import Encryptor

    h = Harness(database.connect(db_path))
    owner = SecretKey.generate()
    browser = new_client(1)
    signup(h, browser, account=owner)
    again = h.event(browser, "status")
    h.send_event(browser, again)
    h.send_event(browser, again)  # answered from the stored reply
    laptop = new_client(2)
    assert h.send(laptop, "request_login", {"email": "ana@example.org"}).ok
    assert h.send(laptop, "verify_code", {"code": h.last_code("ana@example.org")}).ok
    me = Encryptor(owner)
    assert h.send(new_client(3), "request_account", {"email": "new@example.org"}).ok  # never verified
    assert h.send(me, "change_email", {"email": "new@example.org"}).ok
    assert h.send(me, "confirm_email", {"code": h.last_code("new@example.org")}).ok
    assert h.send(me, "update_backup", {"backup": BACKUP}).ok
    assert h.send(me, "set_notifications", {"login_notice": False}).ok
    assert h.send(laptop, "resend_code").code  # answered, whatever the answer
    assert h.send(me, "request_deletion").ok
    with database.immediate(h.conn):
        due = repository.due_replies(h.conn, T0 + 3600, 10)
        marks = (ReplyMark(due[0].event_id, True, T0), ReplyMark(due[1].event_id, False, T0 + 9))
        repository.write_bookkeeping(h.conn, marks)
    mails = outbox.claim_due(h.conn, T0 + 3600, 10, 60, "run-1")
    outcomes = [
        outbox.Outcome(mails[0], "sent", at=T0),
        outbox.Outcome(mails[1], "retry", "busy", T0 + 60),
        outbox.Outcome(mails[2], "dead", "refused"),
    ]
    outbox.record(h.conn, outcomes)
    outbox.release_claims(h.conn, "run-2", T0)
    repository.replies_due_now(h.conn, T0)
    repository.last_processed_at(h.conn)
    assert h.send(me, "delete_account", {"code": h.last_code("new@example.org")}).ok
    h.conn.close()

    plain = database.connect(db_path)
    tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    indexes = plain.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'")
    partial_indexes = {r[0] for r in indexes}
    scans = set()
    for sql, params in dict.fromkeys(statements):
        if params is None or not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            continue
        for row in plain.execute("EXPLAIN QUERY PLAN " + sql, params):
            words = row["detail"].split()
            if words[0] == "SCAN" and words[1] in tables and not (set(words) & partial_indexes):
                if sql == memo.BLOCK_LIST:  # read whole once after each change, not per request
                    continue
                scans.add(f"{row['detail']}: {sql}")
    plain.close()
    assert len({s for s, _ in statements}) > 30  # the flows above really ran through the recorder
    assert not scans, "\n".join(sorted(scans))


def test_migrate_command_steps_an_old_sqlite_database_and_says_from_which_version(tmp_path, capsys):
    old = tmp_path / "we?ird#dir" / "db.sqlite3"  # a path a file: URI would misread
    old.parent.mkdir()
    conn = sqlite3.connect(old)
    conn.executescript((ROOT / "tests" / "fixtures" / "schema_v1.sql").read_text())
    conn.close()
    config = old.parent / "sigit-dvm.toml"
    config.write_text('[store]\npath = "db.sqlite3"\n')
    assert main(["-c", str(config), "migrate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["from_version"], out["version"]) == (1, database.SCHEMA_VERSION)
    assert main(["-c", str(config), "migrate"]) == 0
    assert "already current" in capsys.readouterr().out

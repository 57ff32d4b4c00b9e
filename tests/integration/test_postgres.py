"""What the PostgreSQL backend promises beyond the shared contract (tests/integration/test_store.py):
the schema twin, migrations and refusal of a newer database, one decision per request across
connections, mail claims that never overlap, leases, reconnection, backup and restore."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading

import pytest

from dvm import checks
from dvm.accounts.decision import Mail, MailKind
from dvm.cli import main
from dvm.mailer import outbox
from dvm.store import backends, database, leases, postgres, repository
from dvm.store.sealed import ParamsSeal
from tests.support.admin_world import cli, make_world
from tests.support.flows import CODE_SECRET, T0, Harness, make_service, new_client

pytestmark = pytest.mark.slow


def pg(url: str) -> postgres.PgConnection:
    return postgres.connect(url)


def test_translate_keeps_literals_and_placeholders_apart():
    assert postgres.translate("SELECT ? WHERE x LIKE '%?code' AND y = ?") == (
        "SELECT %s WHERE x ILIKE '%%?code' AND y = %s"
    )
    assert "to_char(to_timestamp(sent_at)" in postgres.translate("SELECT date(sent_at, 'unixepoch') FROM t")


def test_both_schemas_have_the_same_tables_and_columns(pg_url, tmp_path):
    lite = database.connect(tmp_path / "twin.sqlite3")
    tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    on_sqlite = {
        t: {(r[1], bool(r[3]) or bool(r[5])) for r in lite.execute(f"PRAGMA table_info({t})")} for t in tables
    }
    conn = pg(pg_url)
    rows = conn.execute(
        "SELECT table_name, column_name, is_nullable = 'NO' FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name <> 'rowid'"
    ).fetchall()
    on_pg: dict[str, set] = {}
    for table, column, not_null in rows:
        on_pg.setdefault(table, set()).add((column, bool(not_null)))
    assert on_pg == on_sqlite
    assert postgres.user_version(conn) == database.SCHEMA_VERSION == database.user_version(lite)
    assert set(range(postgres.FIRST_VERSION, database.SCHEMA_VERSION)) == set(postgres.MIGRATIONS)


def test_a_newer_database_is_refused_and_migrate_reports_the_version(pg_url, tmp_path, capsys):
    conn = pg(pg_url)  # creates the schema
    conn.execute(
        "UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(database.SCHEMA_VERSION + 1),)
    )
    with pytest.raises(database.StoreError, match="newer"):
        pg(pg_url)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(database.SCHEMA_VERSION),))
    world = make_world(tmp_path, capsys, pg_url)
    out = json.loads(cli(world, "migrate", "--json").stdout)
    assert out["version"] == out["from_version"] == database.SCHEMA_VERSION
    assert "***" not in out["database"] and out["database"].startswith("postgresql://")


def test_migrate_creates_the_schema_on_an_empty_database(pg_url, tmp_path, capsys):
    (tmp_path / "sigit-dvm.toml").write_text(f'[store]\nurl = "{pg_url}"\n')
    assert main(["-c", str(tmp_path / "sigit-dvm.toml"), "migrate"]) == 0
    assert f"schema {database.SCHEMA_VERSION} (was empty)" in capsys.readouterr().out
    assert main(["-c", str(tmp_path / "sigit-dvm.toml"), "migrate"]) == 0
    assert "already current" in capsys.readouterr().out


def test_the_same_request_committed_on_two_connections_at_once_is_decided_once(pg_url):
    """Two daemons decided one event (ownership taken over, see dvm.ownership): the lock on its
    request id orders them; the second finds the first's decision inside its own transaction
    and answers with the stored, identical reply."""
    first, second = Harness(pg(pg_url)), Harness(pg(pg_url))
    client = new_client(1)
    event = first.event(client, "request_account", {"email": "ana@example.org"})
    barrier = threading.Barrier(2)
    answers = []

    def commit(h: Harness) -> None:
        barrier.wait()
        answers.append(h.service.commit(h.conn, [h.open(event)], T0)[0])

    threads = [threading.Thread(target=commit, args=(h,)) for h in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.replayed for a in answers) == [False, True]
    assert answers[0].reply.to_json() == answers[1].reply.to_json()
    assert first.count("requests") == 1 and first.count("mail") == 1 and first.count("users") == 1


def test_concurrent_signups_for_one_address_from_many_connections_make_one_user(pg_url):
    harnesses = [Harness(pg(pg_url), make_service(seed=i)) for i in range(4)]  # own Message-IDs
    barrier = threading.Barrier(len(harnesses))
    outcomes: list[str] = []

    def sign_up(i: int, h: Harness) -> None:
        barrier.wait()
        for j in range(5):
            client = new_client(10 * i + j)
            event = h.event(client, "request_account", {"email": "bo@example.org"})
            answer = h.service.commit(h.conn, [h.open(event)], T0)[0]
            outcomes.append(getattr(answer, "outcome", repr(answer)))

    threads = [threading.Thread(target=sign_up, args=(i, h)) for i, h in enumerate(harnesses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert harnesses[0].count("users") == 1 and len(outcomes) == 20
    assert set(outcomes) <= {"ok", "rate_limited"}, outcomes


def _queue(conn, n: int) -> None:
    seal = ParamsSeal(CODE_SECRET)
    with database.immediate(conn):
        for i in range(n):
            mail = Mail(MailKind.WELCOME, f"m{i}@example.org", None, (("link", "x"),))
            repository.queue_mail(conn, mail, f"msg{i}", None, T0, seal=seal)


def test_mail_claims_from_several_daemons_never_overlap_and_lapse_to_another(pg_url):
    conns = [pg(pg_url) for _ in range(3)]
    _queue(conns[0], 90)
    barrier = threading.Barrier(3)
    claimed: list[list[int]] = [[], [], []]

    def claim(i: int) -> None:
        barrier.wait()
        while rows := outbox.claim_due(conns[i], T0, 7, lease_s=60, claimer=f"d{i}"):
            claimed[i].extend(r.id for r in rows)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [mail_id for ids in claimed for mail_id in ids]
    assert sorted(every) == sorted(set(every)) and len(every) == 90
    # Daemon 0 dies holding its claims: nobody takes them within the lease, anybody after it.
    assert outbox.claim_due(conns[1], T0 + 59, 100, lease_s=60, claimer="d1") == []
    taken = outbox.claim_due(conns[1], T0 + 60, 100, lease_s=60, claimer="d1")
    assert len(taken) == 90 and all(m.attempts == 2 for m in taken)


def test_the_leader_lease_has_one_holder_renews_and_lapses_to_another(pg_url):
    a, b = pg(pg_url), pg(pg_url)
    ttl = leases.LEADER_TTL_S
    assert leases.take(a, "leader", "A", T0, ttl)
    assert not leases.take(b, "leader", "B", T0 + 1, ttl)
    assert leases.take(a, "leader", "A", T0 + ttl - 1, ttl)  # renewed
    assert not leases.take(b, "leader", "B", T0 + ttl + 1, ttl)  # still A's
    assert leases.take(b, "leader", "B", T0 + 2 * ttl, ttl)  # A stopped renewing: B takes over
    assert leases.holder_of(a, "leader", T0 + 2 * ttl) == "B"
    assert leases.give_back(b, "B") == 1
    assert leases.take(a, "leader", "A", T0 + 2 * ttl + 1, ttl)  # given back: at once


async def test_the_daemon_store_reconnects_after_the_server_drops_it(pg_url):
    db = await postgres.PostgresDatabase(pg_url).open()
    try:
        pid = await db.run(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        killer = pg(pg_url)
        killer.execute("SELECT pg_terminate_backend(?)", (pid,))
        with pytest.raises(database.StoreError):
            await db.run(lambda conn: conn.execute("SELECT 1").fetchone())
        assert await db.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
        await asyncio.gather(*(db.run(lambda conn: conn.execute("SELECT 1").fetchone()) for _ in range(20)))
    finally:
        await db.close()


def test_backup_with_pg_dump_restores_into_a_new_database(pg_url, pg_cluster, tmp_path, capsys):
    world = make_world(tmp_path, capsys, pg_url)
    target = tmp_path / "sigit.dump"
    cli(world, "backup", str(target))
    assert target.stat().st_mode & 0o777 == 0o600
    restored = pg_cluster.new_database("restored")
    subprocess.run(
        [str(pg_cluster.bin / "pg_restore"), "--no-owner", "--dbname", restored, str(target)],
        check=True,
        capture_output=True,
    )
    conn = backends.connect_any(restored, tmp_path / "unused")
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 3
    assert postgres.user_version(conn) == database.SCHEMA_VERSION  # type: ignore[arg-type]
    again = cli(world, "backup", str(target), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_a_sqlite_row_and_a_postgresql_row_read_alike(pg_url, tmp_path):
    """The repository reads rows by name and by position, booleans as 0/1, sums as ints."""
    for conn in (pg(pg_url), database.connect(tmp_path / "alike.sqlite3")):
        row = conn.execute(
            "SELECT 1 = 1 AS yes, sum(x) AS total FROM (SELECT 2 AS x UNION ALL SELECT 3) s"
        ).fetchone()
        assert (row["yes"], row[1], type(row["total"])) == (1, 5, int), type(conn)
        assert isinstance(conn, sqlite3.Connection) or row.keys() == ["yes", "total"]


def test_check_config_connect_reaches_the_database_and_says_its_schema(pg_url, tmp_path):
    (tmp_path / "dvm.key").write_text("5d" * 32)
    (tmp_path / "code.secret").write_text(CODE_SECRET.decode())
    (tmp_path / "relays.toml").write_text('relays = ["ws://127.0.0.1:9"]\n')
    (tmp_path / "sigit-dvm.toml").write_text(
        f'[store]\nurl = "{pg_url}"\n[mail]\nbackend = "file"\noutbox_dir = "outbox"\n'
        '[daemon]\nkey_file = "dvm.key"\ncode_secret_file = "code.secret"\n'
    )
    report = checks.check(str(tmp_path / "sigit-dvm.toml"), connect=True)
    assert any(
        line.endswith("connected, empty (the daemon or `migrate` creates the schema)")
        for line in report.connected
    )
    pg(pg_url)
    report = checks.check(str(tmp_path / "sigit-dvm.toml"), connect=True)
    assert any(line.endswith(f"connected, schema {database.SCHEMA_VERSION}") for line in report.connected)
    broken = tmp_path / "broken.toml"
    broken.write_text((tmp_path / "sigit-dvm.toml").read_text().replace(pg_url, pg_url + "_missing"))
    report = checks.check(str(broken), connect=True)
    assert "store.url" in [p.setting for p in report.errors]  # (and the unreachable relay)


def test_a_daemon_that_vanishes_mid_transaction_cannot_keep_the_write_lock(pg_url):
    """A machine lost mid-transaction sends no FIN: the server ends its session once idle in the
    transaction too long, and the write lock is free again. (The daemon's sessions use
    IDLE_IN_TRANSACTION_S; this one is shortened to keep the test short.)"""
    vanished = pg(pg_url)
    assert vanished.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == (
        f"{postgres.IDLE_IN_TRANSACTION_S}s"
    )
    vanished.execute("SET idle_in_transaction_session_timeout = 1500")
    vanished.execute("BEGIN IMMEDIATE")  # holds the write lock, then nothing more
    other = postgres.connect(pg_url, lock_timeout_ms=300)
    with pytest.raises(database.StoreError, match="lock timeout"), database.immediate(other):
        pass
    other.execute("SET lock_timeout = 10000")
    with database.immediate(other):  # waits until the server has ended the vanished session
        pass
    with pytest.raises(database.StoreError):  # the server ended that session
        vanished.execute("SELECT 1")


def test_the_store_password_secret_reaches_a_server_that_asks_for_one(pg_cluster, tmp_path, capsys):
    pg_cluster.psql("DROP ROLE IF EXISTS guarded; CREATE ROLE guarded LOGIN PASSWORD 'open sesame'")
    hba = pg_cluster.directory / "data" / "pg_hba.conf"
    rule = "host all guarded 127.0.0.1/32 scram-sha-256\n"
    if rule not in hba.read_text():
        script = f"printf '{rule}' | cat - {hba} > {hba}.new && mv {hba}.new {hba}"
        as_owner = ["runuser", "-u", pg_cluster.user, "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_owner, "sh", "-c", script], check=True)  # the cluster's files are its user's
        pg_cluster.psql("SELECT pg_reload_conf()")
    url = pg_cluster.new_database("guarded")
    name = url.rsplit("/", 1)[1]
    pg_cluster.psql(f'ALTER DATABASE "{name}" OWNER TO guarded')
    url = url.replace(f"{pg_cluster.user}@", "guarded@")
    config = tmp_path / "sigit-dvm.toml"
    config.write_text(f'[store]\nurl = "{url}"\npassword_file = "pw"\n')
    (tmp_path / "pw").write_text("wrong\n")
    assert main(["-c", str(config), "migrate"]) == 1
    assert "password authentication failed" in capsys.readouterr().err
    (tmp_path / "pw").write_text("open sesame\n")
    assert main(["-c", str(config), "migrate"]) == 0
    out = capsys.readouterr().out
    assert "open sesame" not in out and f"schema {database.SCHEMA_VERSION}" in out

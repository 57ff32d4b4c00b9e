"""Retention on a real SQLite file filled by real requests: what goes, what stays, when, and the
file giving space back."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from dvm.accounts.rules import AccountRules
from dvm.config import RetentionSettings, ServiceSettings, Settings
from dvm.nostr.keys import SecretKey
from dvm.outbox import ReplyMark
from dvm.rules import ServiceRules
from dvm.store import database, repository
from dvm.store.database import Database, immediate
from dvm.store.retention import Retention
from tests.support.flows import LOW_POW, T0, Harness, make_service, new_client

HOUR, DAY = 3600, 86400
SETTINGS = Settings(
    service=ServiceSettings(pow_request_account_bits=2, pow_request_login_bits=2, pow_other_bits=2),
    retention=RetentionSettings(batch_rows=7, vacuum_pages=100_000),
)


@pytest.fixture
def world(tmp_path):
    h = Harness(database.connect(tmp_path / "db.sqlite3"))
    h.path = tmp_path / "db.sqlite3"
    yield h
    h.conn.close()


async def prune_at(h: Harness, now: int, settings: Settings = SETTINGS):
    db = await Database(h.path).open()
    try:
        retention = Retention(db, settings, clock=lambda: now)
        await retention.prepare()
        return await retention.prune()
    finally:
        await db.close()


def publish_all(h: Harness) -> None:
    with immediate(h.conn):
        ids = [r[0] for r in h.conn.execute("SELECT event_id FROM requests WHERE published_at IS NULL")]
        repository.write_bookkeeping(h.conn, tuple(ReplyMark(i, True, h.now) for i in ids))


def mark_mail(h: Harness, status: str) -> None:
    with immediate(h.conn):
        h.conn.execute("UPDATE mail SET status = ?, sent_at = ? WHERE status = 'queued'", (status, h.now))


async def test_an_old_database_is_converted_to_incremental_vacuum_keeping_its_rows(tmp_path):
    old = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    old.executescript(f"BEGIN;\n{database.schema_sql()}\nCOMMIT;")  # as made before: auto_vacuum none
    old.execute("INSERT INTO audit (at, actor, action, target) VALUES (1, 'a', 'b', 'c')")
    old.close()
    db = await Database(tmp_path / "old.sqlite3").open()
    try:
        assert await db.run(lambda c: c.execute("PRAGMA auto_vacuum").fetchone()[0]) == 0
        await Retention(db, SETTINGS).prepare()
        assert await db.run(lambda c: c.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2
        assert await db.run(lambda c: c.execute("SELECT count(*) FROM audit").fetchone()[0]) == 1
    finally:
        await db.close()
    assert database.connect(tmp_path / "new.sqlite3").execute("PRAGMA auto_vacuum").fetchone()[0] == 2


async def test_requests_go_once_a_replay_would_be_refused_and_their_reply_is_out(world):
    h = world
    client = new_client(1)
    event = h.event(client, "request_account", {"email": "ana@example.org"})
    h.send_event(client, event)
    replay_s = SETTINGS.service.created_at_window_s + SETTINGS.relays.since_margin_s
    # Within the window a replay is answered from storage, so the record stays.
    await prune_at(h, T0 + replay_s - 1)
    assert h.count("requests") == 1
    assert h.send_event(client, event)[0].replayed
    # Past it, but the reply was never published and has not expired: kept for the retry loop.
    await prune_at(h, T0 + replay_s + 1)
    assert h.count("requests") == 1
    publish_all(h)
    pruned = await prune_at(h, T0 + replay_s + 1)
    assert pruned.rows["requests"] == 1 and h.count("requests") == 0
    # An unpublished reply goes once it expired (reply_ttl_s) anyway.
    h.now = T0 + 10
    h.send(new_client(2), "request_account", {"email": "bo@example.org"})
    await prune_at(h, T0 + 10 + SETTINGS.service.reply_ttl_s + replay_s)
    assert h.count("requests") == 0


async def test_request_keep_s_keeps_them_longer_for_events_and_stats(world):
    h = world
    h.send(new_client(1), "request_account", {"email": "ana@example.org"})
    publish_all(h)
    keep = dataclasses.replace(
        SETTINGS, retention=dataclasses.replace(SETTINGS.retention, request_keep_s=DAY)
    )
    await prune_at(h, T0 + DAY - 1, keep)
    assert h.count("requests") == 1
    await prune_at(h, T0 + DAY + 1, keep)
    assert h.count("requests") == 0


async def test_sessions_codes_and_code_counters_go_once_no_limit_reads_them(world):
    h = world
    for i in range(3):
        h.send(new_client(i), "request_account", {"email": "ana@example.org"})
        h.now += 61  # past the resend cooldown
    assert [h.count(t) for t in ("sessions", "code_sends", "codes")] == [3, 3, 3]
    # The hourly limit still counts them: kept.
    await prune_at(h, h.now)
    assert (h.count("sessions"), h.count("code_sends"), h.count("codes")) == (3, 3, 3)
    await prune_at(h, T0 + 2 * 15 * 60 + 200)  # a code's life after the last expired: nothing compares them
    assert (h.count("sessions"), h.count("code_sends"), h.count("codes")) == (3, 3, 0)
    await prune_at(h, T0 + HOUR + 200)  # the hourly caps no longer count them
    assert (h.count("sessions"), h.count("code_sends")) == (3, 0)
    await prune_at(h, T0 + DAY + 200)
    assert h.count("sessions") == 0


async def test_a_code_kept_alive_by_requests_that_join_it_is_never_pruned_while_it_lives(world):
    h = world
    h.send(new_client(1), "request_account", {"email": "ana@example.org"})
    for i in range(2, 8):  # a request a while apart, each joining (the cap is reached after 5 mints)
        h.now += 10 * 60
        h.send(new_client(i), "request_account", {"email": "ana@example.org"})
    await prune_at(h, h.now)
    live = h.conn.execute(
        "SELECT count(*) FROM codes WHERE expires_at > ? AND used = 0", (h.now,)
    ).fetchone()[0]
    assert live >= 1
    assert h.send(new_client(7), "verify_code", {"code": h.last_code("ana@example.org")}).ok


def with_service(**changes: int) -> Settings:
    return dataclasses.replace(SETTINGS, service=dataclasses.replace(SETTINGS.service, **changes))


async def test_short_settings_shorten_every_keep_so_a_soak_levels_off_in_minutes(world):
    h = world
    short = {"code_ttl_s": 60, "activation_window_s": 60, "account_session_s": 60, "code_window_s": 600}
    h.service = make_service(ServiceRules(intake=LOW_POW.intake, accounts=AccountRules(**short)))
    settings = with_service(**short)
    h.send(new_client(1), "request_account", {"email": "ana@example.org"})
    # A session is kept while its code, its signup or its right to act lasts, and a code's life.
    await prune_at(h, T0 + 119, settings)
    assert (h.count("sessions"), h.count("code_sends"), h.count("codes")) == (1, 1, 1)
    await prune_at(h, T0 + 121, settings)
    assert (h.count("sessions"), h.count("code_sends"), h.count("codes")) == (0, 1, 1)
    # Codes: a code's life and a minute after they expired (at T0 + 60).
    await prune_at(h, T0 + 60 + 60 + 61, settings)
    assert (h.count("code_sends"), h.count("codes")) == (1, 0)
    # Code counters: the caps' window and a minute (a minute bucket once all of it is past).
    await prune_at(h, T0 + 600 + 61, settings)
    assert h.count("code_sends") == 0
    await prune_at(h, T0 + 600 + 60 + 61, settings)
    assert h.count("code_send_minutes") == 0


async def test_a_session_is_kept_as_long_as_it_may_act_for_its_account(world):
    """account_session_s may be days: its session was pruned after two hours, taking the right
    with it."""
    h = world
    h.service = make_service(
        ServiceRules(intake=LOW_POW.intake, accounts=AccountRules(account_session_s=DAY))
    )
    settings = with_service(account_session_s=DAY)
    browser, account = new_client(1), SecretKey.generate()
    h.send(browser, "request_account", {"email": "ana@example.org"})
    h.send(browser, "verify_code", {"code": h.last_code("ana@example.org")})
    assert h.send(browser, "activate", {"pubkey": account.pubkey_hex, "backup": "QUJD"}, seal=account).ok
    h.now = T0 + DAY - 60
    await prune_at(h, h.now, settings)
    assert h.send(browser, "status").ok  # still acts for the account through its session
    await prune_at(h, T0 + DAY + SETTINGS.service.code_ttl_s + 1, settings)
    assert h.count("sessions") == 0


async def test_wrong_codes_stay_for_the_guessing_window_and_used_seals_for_theirs(world):
    h = world
    browser = new_client(1)
    h.send(browser, "request_account", {"email": "ana@example.org"})
    h.send(
        browser, "verify_code", {"code": "000000" if h.last_code("ana@example.org") != "000000" else "1" * 6}
    )
    account = SecretKey.generate()
    h.send(browser, "activate", {"pubkey": account.pubkey_hex, "backup": "QUJD"}, seal=account)
    assert (h.count("code_failures"), h.count("seals")) == (1, 1)
    await prune_at(h, T0 + 2 * SETTINGS.service.created_at_window_s + 1)
    assert (h.count("code_failures"), h.count("seals")) == (1, 0)
    await prune_at(h, T0 + SETTINGS.service.code_failure_window_s - 100)
    assert h.count("code_failures") == 1
    await prune_at(h, T0 + SETTINGS.service.code_failure_window_s + 200)
    assert h.count("code_failures") == 0


async def test_sent_and_dead_mail_go_after_mail_s_queued_mail_stays(world):
    h = world
    keep = dataclasses.replace(SETTINGS.retention, unverified_s=3650 * DAY)  # the users stay
    settings = dataclasses.replace(SETTINGS, retention=keep)
    h.send(new_client(1), "request_account", {"email": "ana@example.org"})
    mark_mail(h, "sent")
    h.send(new_client(2), "request_account", {"email": "bo@example.org"})
    mark_mail(h, "dead")
    h.send(new_client(3), "request_account", {"email": "cy@example.org"})
    assert h.count("mail") == 3
    await prune_at(h, T0 + keep.mail_s - 1, settings)
    assert h.count("mail") == 3
    await prune_at(h, T0 + keep.mail_s + 1, settings)
    assert [r[0] for r in h.conn.execute("SELECT status FROM mail")] == ["queued"]


async def test_never_verified_signups_go_after_unverified_s_accounts_stay(world):
    h = world
    ana = new_client(1)
    h.send(ana, "request_account", {"email": "ana@example.org"})
    h.send(ana, "verify_code", {"code": h.last_code("ana@example.org")})
    for i in range(20):  # more than a slice (batch_rows = 7) of never-verified signups
        h.send(new_client(10 + i), "request_account", {"email": f"ghost{i}@example.org"})
    late = T0 + SETTINGS.retention.unverified_s - HOUR
    h.now = late
    h.send(new_client(99), "request_account", {"email": "ghost0@example.org"})  # asked again lately
    pruned = await prune_at(h, T0 + SETTINGS.retention.unverified_s + 1)
    assert pruned.rows["users"] == 19
    emails = sorted(r[0] for r in h.conn.execute("SELECT email FROM users"))
    assert emails == ["ana@example.org", "ghost0@example.org"]
    ghost_ids = "SELECT id FROM users WHERE email LIKE 'ghost%'"
    assert h.count("mail", f"user_id NOT IN ({ghost_ids}) AND recipient LIKE 'ghost%'") == 0
    assert h.count("sessions", "user_id NOT IN (SELECT id FROM users)") == 0
    # Not an erasure: nothing is recorded (it grew by one row per never-verified signup, for ever).
    assert h.count("erased_addresses") == 0


async def test_audit_rows_go_after_audit_s(world):
    h = world
    with immediate(h.conn):
        h.conn.executemany(
            "INSERT INTO audit (at, actor, action, target) VALUES (?, 'alice', 'x', 'y')",
            [(T0 + i,) for i in range(10)],
        )
    await prune_at(h, T0 + SETTINGS.retention.audit_s + 5)
    assert [r[0] for r in h.conn.execute("SELECT at FROM audit")] == [T0 + i for i in range(5, 10)]


async def test_the_file_gives_the_space_back(world):
    h = world
    for i in range(300):
        h.send(new_client(i), "request_account", {"email": f"u{i}@example.org"})
    publish_all(h)
    mark_mail(h, "sent")
    h.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = h.conn.execute("PRAGMA page_count").fetchone()[0]
    pruned = await prune_at(h, T0 + 400 * DAY)
    h.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert h.count("users") == 0 and h.count("requests") == 0 and h.count("mail") == 0
    assert pruned.pages > 0 and h.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert h.conn.execute("PRAGMA page_count").fetchone()[0] < full / 4
    assert h.path.stat().st_size < full * 4096 / 4


@pytest.mark.slow
async def test_the_daemon_converts_an_old_database_and_prunes_on_its_timer(tmp_path, relay, smtp):
    from tests.support.daemon import make_settings, start_daemon
    from tests.support.relay import wait_until

    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    settings = dataclasses.replace(settings, retention=RetentionSettings(interval_s=0.2))
    path = settings.path(settings.store.path)
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN;\n{database.schema_sql()}\nCOMMIT;")  # as made before: auto_vacuum none
    old.execute("INSERT INTO audit (at, actor, action, target) VALUES (1, 'alice', 'x', 'y')")
    old.close()
    daemon = await start_daemon(settings)
    try:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        await wait_until(lambda: conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 0, timeout_s=10)
        conn.close()
    finally:
        await daemon.shutdown()

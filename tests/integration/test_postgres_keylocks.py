"""Decisions on a shared PostgreSQL database lock what they touch, not the whole database
(``dvm.store.keylocks``): different mailboxes never wait for each other, and the account rules
hold when daemons decide about the same mailbox, code or key at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey
from dvm.store import database, keylocks, postgres, repository
from dvm.store.database import KEYED_BEGIN
from tests.support.flows import T0, Harness, make_service, new_client

pytestmark = pytest.mark.slow


def pg(url: str, lock_timeout_ms: int = 10_000) -> postgres.PgConnection:
    return postgres.connect(url, lock_timeout_ms=lock_timeout_ms)


def wait_for_lock_wait(
    watcher: postgres.PgConnection, conn: postgres.PgConnection, key: str | None = None
) -> None:
    """Return once ``conn``'s backend waits for a lock another transaction holds: any, or the
    advisory lock named ``key`` (pg_locks shows its bigint as two unsigned halves)."""
    number = watcher.execute("SELECT hashtextextended(?, 0)", (key,)).fetchone()[0] if key else 0
    unsigned = number & (2**64 - 1)
    sql = (
        "SELECT count(*) FROM pg_locks WHERE pid = ? AND NOT granted"
        if key is None
        else "SELECT count(*) FROM pg_locks WHERE pid = ? AND NOT granted AND locktype = 'advisory' "
        f"AND objsubid = 1 AND classid = {unsigned >> 32} AND objid = {unsigned & 0xFFFFFFFF}"
    )
    deadline = time.monotonic() + 30
    while not watcher.execute(sql, (conn.shard,)).fetchone()[0]:
        assert time.monotonic() < deadline, "never waited"
        time.sleep(0.02)


def hold(h: Harness, event) -> keylocks.KeyLocks:
    """Begin a decision's transaction on ``h`` and lock ``event``'s keys, as a daemon's batch
    would, and keep it open (the caller rolls it back)."""
    h.conn.execute(KEYED_BEGIN)
    locks = keylocks.lock_batch(h.conn, [h.open(event)], repository.erasure_salt(h.conn))
    assert locks is not None
    return locks


def test_a_decision_about_another_mailbox_does_not_wait_one_about_the_same_mailbox_does(pg_url):
    holder, other, same = Harness(pg(pg_url)), Harness(pg(pg_url)), Harness(pg(pg_url, lock_timeout_ms=300))
    hold(holder, holder.event(new_client(1), "request_account", {"email": "ana@example.org"}))
    try:
        bo = other.event(new_client(2), "request_account", {"email": "bo@example.org"})
        assert other.service.commit(other.conn, [other.open(bo)], T0)[0].outcome == "ok"
        # The same mailbox (another spelling of it, another key): its batch waits, then fails.
        ana = same.event(new_client(3), "request_account", {"email": "Ana+x@Example.org"})
        with pytest.raises(database.StoreError, match="lock timeout"):
            same.service.commit(same.conn, [same.open(ana)], T0)
    finally:
        holder.conn.execute("ROLLBACK")
    assert same.service.commit(same.conn, [same.open(ana)], T0)[0].outcome == "ok"  # retried: through


def test_the_clis_transactions_and_decisions_still_exclude_each_other(pg_url):
    """An admin action (the write lock, exclusive) waits for decisions under way, and they for it."""
    cli, daemon = pg(pg_url, lock_timeout_ms=300), Harness(pg(pg_url, lock_timeout_ms=300))
    event = daemon.event(new_client(5), "request_account", {"email": "ana@example.org"})
    cli.execute("BEGIN IMMEDIATE")
    with pytest.raises(database.StoreError, match="lock timeout"):
        daemon.service.commit(daemon.conn, [daemon.open(event)], T0)
    cli.execute("ROLLBACK")
    hold(daemon, daemon.event(new_client(6), "request_account", {"email": "bo@example.org"}))
    with pytest.raises(database.StoreError, match="lock timeout"), database.immediate(cli):
        pass
    daemon.conn.execute("ROLLBACK")
    assert daemon.service.commit(daemon.conn, [daemon.open(event)], T0)[0].outcome == "ok"


def test_a_mailbox_code_works_once_when_two_of_its_sessions_redeem_it_at_once(pg_url):
    """Two sessions of ana's mailbox present its one code on two daemons at once. A script holds
    the code's row meanwhile, so the first decision has read the code and waits to spend it
    while the second comes: that one must wait for the mailbox, then find the code spent."""
    harnesses = [Harness(pg(pg_url), make_service(seed=i)) for i in range(2)]
    clients = [new_client(10 + i) for i in range(2)]
    for h, client in zip(harnesses, clients, strict=True):  # two sessions on ana's one live code
        assert h.send(client, "request_account", {"email": "ana@example.org"}).ok
    code = harnesses[0].last_code("ana@example.org")
    assert harnesses[0].count("codes") == 1
    script, watcher = pg(pg_url), pg(pg_url)
    script.execute("BEGIN")
    script.execute("SELECT id FROM codes FOR UPDATE")
    with ThreadPoolExecutor(2) as pool:
        answers = []
        for h, client in zip(harnesses, clients, strict=True):
            event = h.event(client, "verify_code", {"code": code})
            answers.append(pool.submit(h.service.commit, h.conn, [h.open(event)], T0))
            wait_for_lock_wait(watcher, h.conn)  # the first on the code's row, the second on ana's mailbox
        script.execute("ROLLBACK")
        outcomes = sorted(a.result()[0].outcome for a in answers)
    assert outcomes == ["code_invalid", "ok"]


def test_one_activated_account_per_key_when_two_register_codes_for_it_match_at_once(pg_url):
    """Two signups (two addresses) name one key; their codes match on two daemons at once, both
    read before either writes (a script holds the codes' rows): one account gets the key."""
    owner = SecretKey.generate()  # both signups name (and are sealed by) this one key
    backup = bech32.encode("ncryptsec", b"\x02" + bytes(90))
    harnesses = [Harness(pg(pg_url), make_service(seed=i)) for i in range(2)]
    clients = [new_client(20 + i) for i in range(2)]
    emails = ["ana@example.org", "bo@example.org"]
    for h, client, email in zip(harnesses, clients, emails, strict=True):
        params = {"pubkey": owner.pubkey_hex, "email": email, "backup": backup}
        assert h.send(client, "register", params, seal=owner).ok
    script, watcher = pg(pg_url), pg(pg_url)
    script.execute("BEGIN")
    script.execute("SELECT id FROM codes FOR UPDATE")
    with ThreadPoolExecutor(2) as pool:
        answers = []
        for h, client, email in zip(harnesses, clients, emails, strict=True):
            event = h.event(client, "verify_code", {"code": h.last_code(email)})
            answers.append(pool.submit(h.service.commit, h.conn, [h.open(event)], T0))
            wait_for_lock_wait(watcher, h.conn)
        script.execute("ROLLBACK")
        assert sorted(a.result()[0].outcome for a in answers) == ["ok", "pubkey_taken"]
    assert harnesses[0].count("users", "pubkey = ? AND activated = 1", owner.pubkey_hex) == 1


def test_a_row_no_lock_foresaw_written_meanwhile_is_read_by_a_second_try(pg_url):
    """A writer that takes no key (a script, a bug) inserts the address's user under the decision:
    the decision's insert conflicts, and the request is decided again, seeing that user."""
    h, script, watcher = Harness(pg(pg_url)), pg(pg_url), pg(pg_url)
    event = h.event(new_client(30), "request_account", {"email": "cy@example.org"})
    script.execute("BEGIN")
    script.execute(
        "INSERT INTO users (id, email, verified, activated, created_at, updated_at) "
        "VALUES ('u-script', 'cy@example.org', 0, 0, ?, ?)",
        (T0, T0),
    )
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(h.service.commit, h.conn, [h.open(event)], T0)
        wait_for_lock_wait(watcher, h.conn)  # its insert waits for the script's row
        script.execute("COMMIT")
        (decided,) = answer.result()
    assert decided.outcome == "ok"
    assert h.conn.execute("SELECT user_id FROM sessions").fetchall() == [("u-script",)]
    assert h.count("users") == 1


def test_rows_that_change_between_a_batchs_first_read_and_its_locks_are_locked_when_loaded(pg_url):
    """A key's session moves to another account (and mailbox) while a resend from that key
    waits for the session's lock: once loaded, the new mailbox is locked too before its codes
    are read, so the resend waits for whoever holds that mailbox."""
    h, mover, mailbox, watcher = Harness(pg(pg_url)), Harness(pg(pg_url)), Harness(pg(pg_url)), pg(pg_url)
    client, other = new_client(40), new_client(41)
    assert h.send(client, "request_account", {"email": "ana@example.org"}).ok
    assert h.send(other, "request_account", {"email": "bo@example.org"}).ok
    h.now += 3600  # past the resend cooldown
    bo_user, bo_subject, bo_address = h.conn.execute(
        "SELECT user_id, subject, address FROM sessions WHERE pubkey = ?", (other.key.pubkey_hex,)
    ).fetchone()
    # The mover holds the key's session (as a decision from that key would) and repoints it.
    mover.conn.execute(KEYED_BEGIN)
    keylocks.KeyLocks(mover.conn).take([keylocks.key("session", client.key.pubkey_hex)])
    mover.conn.execute(
        "UPDATE sessions SET user_id = ?, subject = ?, address = ? WHERE pubkey = ?",
        (bo_user, bo_subject, bo_address, client.key.pubkey_hex),
    )
    # Someone holds bo's mailbox, which the resend's first read could not know it needs.
    hold(mailbox, mailbox.event(new_client(42), "request_login", {"email": "bo@example.org"}))
    resend = h.event(client, "resend_code")
    bo_mailbox = keylocks.key("mailbox", bo_subject.removeprefix("h:"))  # subjects are stored hashed
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(h.service.commit, h.conn, [h.open(resend)], h.now)
        wait_for_lock_wait(watcher, h.conn, keylocks.key("session", client.key.pubkey_hex))
        mover.conn.execute("COMMIT")
        wait_for_lock_wait(watcher, h.conn, bo_mailbox)  # seen in the session it loaded
        mailbox.conn.execute("ROLLBACK")
        (decided,) = answer.result()
    assert decided.outcome == "ok"
    assert h.conn.execute(
        "SELECT recipient FROM mail WHERE kind = 'signup_code' ORDER BY id DESC LIMIT 1"
    ).fetchone() == ("bo@example.org",)


def test_a_code_to_a_mailbox_no_row_named_locks_that_mailbox_before_reading_it(pg_url):
    """A deletion sealed by the account's key names no address and has no session: its code goes
    to the account's address, whose mailbox it locks before reading its codes and caps."""
    h, mailbox, watcher = Harness(pg(pg_url)), Harness(pg(pg_url)), pg(pg_url)
    owner, browser = SecretKey.generate(), new_client(50)
    backup = bech32.encode("ncryptsec", b"\x02" + bytes(90))
    assert h.send(browser, "request_account", {"email": "ana@example.org"}).ok
    assert h.send(browser, "verify_code", {"code": h.last_code("ana@example.org")}).ok
    assert h.send(browser, "activate", {"pubkey": owner.pubkey_hex, "backup": backup}, seal=owner).ok
    hold(mailbox, mailbox.event(new_client(51), "request_login", {"email": "ana@example.org"}))
    ana = keylocks.key("mailbox", repository.mailbox_counter_key(h.conn, "ana@example.org"))
    deletion = h.event(new_client(52), "request_deletion", seal=owner)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(h.service.commit, h.conn, [h.open(deletion)], T0)
        wait_for_lock_wait(watcher, h.conn, ana)
        mailbox.conn.execute("ROLLBACK")
        (decided,) = answer.result()
    assert decided.outcome == "ok"
    assert h.count("mail", "kind = 'deletion_code'") == 1

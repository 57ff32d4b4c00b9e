"""What the daemon remembers between transactions (dvm.store.memo) always matches the database:
through its own counts, requests rolled back, failed transactions, time, and other connections'
commits."""

from __future__ import annotations

import random

import pytest

from dvm.admin import actions
from dvm.store import database, memo, repository

SCOPES = ("*", "domain-a", "domain-b", "domain-c")
T0 = 1_800_000_000


class Boom(Exception):
    pass


@pytest.fixture
def conns(tmp_path):
    path = tmp_path / "memo.sqlite3"
    daemon, other = database.connect(path), database.connect(path)
    yield daemon, other
    daemon.close()
    other.close()


def agree(conn, batch, now: int) -> None:
    since = now - 3600  # the daemon's one window (a longer one is read from the database again)
    for scope in SCOPES:
        assert batch.sends(scope, since) == repository.minute_sends(conn, scope, since), scope


@pytest.mark.parametrize(("seed", "max_scopes"), [(0, 8), (1, 8), (2, 8), (3, 3), (4, 3)])
def test_remembered_minute_counts_match_the_database_through_rollbacks_and_time(conns, seed, max_scopes):
    conn, _ = conns
    remembered = memo.Memo(max_scopes=max_scopes)  # 3: fewer than the scopes, some are read again
    rng = random.Random(seed)
    now = T0
    for _ in range(40):
        now += rng.choice((0, 5, 30, 61, 700))
        failed = rng.random() < 0.15
        try:
            with database.immediate(conn):
                batch = remembered.batch(conn)
                agree(conn, batch, now)
                for _ in range(rng.randint(1, 4)):
                    scopes = rng.sample(SCOPES, rng.randint(1, 2))
                    try:
                        with batch.request():
                            agree(conn, batch, now)
                            batch.count_sends(scopes, (now - rng.choice((0, 0, 120))) // 60)
                            agree(conn, batch, now)
                            if rng.random() < 0.25:
                                raise Boom  # this request's savepoint rolls back
                    except Boom:
                        pass
                    agree(conn, batch, now)
                if failed:
                    raise Boom  # the whole transaction rolls back
        except Boom:
            remembered.forget()  # what AccountService.commit does when a transaction fails
        with database.immediate(conn):
            agree(conn, remembered.batch(conn), now)


def test_another_connections_blocks_and_resets_are_seen_by_the_next_batch(conns):
    conn, other = conns
    remembered = memo.Memo()
    with database.immediate(conn):
        batch = remembered.batch(conn)
        assert not batch.blocked("x@spam.example")
        batch.count_sends(["*"], T0 // 60)
        assert batch.sends("*", T0 - 60).count == 1
    actions.add_block(other, "spam.example", "", T0, "alice")
    actions.purge_sessions(other, T0 + 3600 * 24, 0, "alice")  # takes the counters with it
    with database.immediate(conn):
        batch = remembered.batch(conn)
        assert batch.blocked("x@mail.spam.example")
        assert batch.sends("*", T0 - 60).count == 0
    actions.remove_block(other, "spam.example", T0, "alice")
    with database.immediate(conn):
        assert not remembered.batch(conn).blocked("x@spam.example")


def test_a_block_list_too_long_to_hold_is_looked_up_address_by_address(conns):
    conn, other = conns
    for domain in ("a.example", "b.example", "c.example"):
        actions.add_block(other, domain, "", T0, "alice")
    remembered = memo.Memo(max_blocks=2)
    with database.immediate(conn):
        batch = remembered.batch(conn)
        assert batch.blocked("x@c.example") and batch.blocked("Y@sub.a.example".lower())
        assert not batch.blocked("x@d.example")

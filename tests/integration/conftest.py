"""Real services for integration tests: a relay and an SMTP server on 127.0.0.1, and a
PostgreSQL cluster (one per test session, a database per test) for the tests of that backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvm.store import backends
from tests.support import postgres
from tests.support.admin_world import world, world_sqlite  # noqa: F401 (the admin CLI's database)
from tests.support.relay import chosen_relay, make_relay
from tests.support.smtp import Catcher, start_smtp


@pytest.fixture
def relay(tmp_path, request):
    """The relay SIGIT_TEST_RELAY names (nostr-relay on its default storage unless it says
    rust-nostr); ``@pytest.mark.parametrize("relay", [...], indirect=True)`` picks others by name
    (tests.support.relay.make_relay: "nostr-relay", "lmdb", "rust-nostr"...)."""
    relay = make_relay(tmp_path / "relay-a", getattr(request, "param", None) or chosen_relay()).start()
    yield relay
    relay.stop()


@pytest.fixture
def smtp():
    """The aiosmtpd catcher (``.messages``, ``.refuse``) with its ``.port``."""
    catcher = Catcher()
    controller = start_smtp(catcher)
    catcher.port = controller.port
    yield catcher
    controller.stop()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster (tests.support.postgres). Without Debian's server binaries
    the PostgreSQL tests skip, unless SIGIT_REQUIRE_POSTGRES=1 (scripts/test sets it once
    scripts/bootstrap_pg has installed them) makes that a failure."""
    cluster = postgres.start_cluster()
    if cluster is None:
        if os.environ.get("SIGIT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries missing (scripts/bootstrap_pg installs them)")
        pytest.skip("PostgreSQL server binaries missing (scripts/bootstrap_pg installs them)")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a new, empty database in the session's cluster."""
    return pg_cluster.new_database()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """Each backend in turn, as ``store.url``: '' (SQLite at store.path) or a PostgreSQL URL."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("pg_url")


@pytest.fixture
def connect_store(store_url, tmp_path):
    """``connect_store()``: a new connection to the test's database, on the backend under test."""
    opened = []

    def connect():
        conn = backends.connect_any(store_url, Path(tmp_path) / "contract.sqlite3")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()

"""Two daemons starting together: the second waits for the first's migration under
MIGRATE_LOCK ("two starting together are safe", docs/operations.md). But the daemon's session has
lock_timeout = 5 s before it migrates, and that timeout applies to the advisory lock too: a
migration that takes longer makes every other starting daemon (and `migrate` with the CLI's
30 s) fail instead of waiting."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dvm.store import postgres

pytestmark = pytest.mark.slow


async def test_a_daemon_starting_during_a_long_migration_waits_for_it(pg_url):
    migrating = postgres.connect(pg_url)  # the schema exists: the other daemon only checks it
    migrating.execute("SELECT pg_advisory_lock(?, ?)", postgres.MIGRATE_LOCK)  # a long migration
    threading.Timer(postgres.DAEMON_LOCK_TIMEOUT_MS / 1000 + 2, migrating.close).start()
    started = time.monotonic()
    db = await postgres.PostgresDatabase(pg_url).open()
    try:
        assert time.monotonic() - started > postgres.DAEMON_LOCK_TIMEOUT_MS / 1000
        assert await db.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
    finally:
        await db.close()
        await asyncio.sleep(0)

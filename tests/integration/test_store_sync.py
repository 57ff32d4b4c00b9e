"""Commits that do not wait for fsync (mail outcomes, reply marks) on the SQLite store: only
they skip it, and the WAL still reaches the disk within the store's sync window."""

from __future__ import annotations

import asyncio

import pytest

from dvm.store import database
from tests.support.relay import wait_until

FULL, NORMAL = 2, 1


def synchronous(conn) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


def write(conn) -> int:
    with database.immediate(conn):
        conn.execute("INSERT INTO meta (name, value) VALUES ('probe', 'x') ON CONFLICT DO NOTHING")
    return synchronous(conn)


async def test_an_unsynced_commit_leaves_every_other_commit_waiting_for_fsync(tmp_path):
    db = await database.Database(tmp_path / "db.sqlite3", sync_window_s=3600).open()
    try:
        assert await db.run(synchronous) == FULL
        assert await db.run_unsynced(write) == NORMAL
        assert db.unsynced
        assert await db.run(synchronous) == FULL  # the next request batch waits for its fsync

        def fails(conn):
            write(conn)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await db.run_unsynced(fails)
        assert await db.run(synchronous) == FULL
        await db.sync()
        assert not db.unsynced
    finally:
        await db.close()


async def test_unsynced_commits_reach_the_disk_within_the_window_and_at_close(tmp_path):
    db = await database.Database(tmp_path / "db.sqlite3", sync_window_s=0.05).open()
    await db.run_unsynced(write)
    await wait_until(lambda: not db.unsynced)  # synced by the store itself, off the event loop
    for _ in range(3):  # several in a row: one sync covers them
        await db.run_unsynced(write)
        await asyncio.sleep(0)
    await wait_until(lambda: not db.unsynced)
    slow = await database.Database(tmp_path / "db.sqlite3", sync_window_s=3600).open()
    await slow.run_unsynced(write)
    assert slow.unsynced
    await slow.close()  # a clean shutdown syncs what is left
    assert not slow.unsynced
    await db.close()


async def test_savepoint_journals_stay_in_memory_on_every_connection(tmp_path):
    """A savepoint's journal never spills to a temporary file (for the daemon a write and a read
    of /var/tmp per request; for the CLI's erasures too, page images of rows outside the database
    file): the daemon's store and the CLI's open their connections the same way."""
    db = await database.Database(tmp_path / "db.sqlite3").open()
    try:
        assert await db.run(lambda conn: conn.execute("PRAGMA temp_store").fetchone()[0]) == 2  # MEMORY
        # and its page cache is the 32 MiB docs/operations.md counts in its memory
        assert await db.run(lambda conn: conn.execute("PRAGMA cache_size").fetchone()[0]) == -32 * 1024
    finally:
        await db.close()
    cli = database.connect(tmp_path / "db.sqlite3")  # another connection to the same file
    try:
        assert cli.execute("PRAGMA temp_store").fetchone()[0] == 2
    finally:
        cli.close()

"""Commits that do not wait for fsync on the event loop, on the SQLite store: a decision batch's
(synced in a thread before the call returns), and those of mail outcomes and reply marks (synced
within the store's sync window); every other commit still waits for its fsync."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

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


async def test_a_durable_call_returns_once_its_commit_is_flushed_by_another_thread(tmp_path, monkeypatch):
    """The decision batches' path (dvm.pipeline): the commit writes the WAL without waiting, the
    flush runs off the event loop's thread, and the call returns only after it."""
    flushed: list[tuple[Path, int]] = []
    real = database._fsync

    def spy(path: Path) -> None:
        real(path)
        flushed.append((path, threading.get_ident()))

    monkeypatch.setattr(database, "_fsync", spy)
    db = await database.Database(tmp_path / "db.sqlite3", sync_window_s=3600).open()
    try:
        assert await db.run_durable(write) == NORMAL  # the commit itself did not wait
        assert [path for path, _ in flushed] == [tmp_path / "db.sqlite3-wal"]  # flushed before returning
        assert flushed[0][1] != threading.get_ident()  # by another thread than the loop's
        assert not db.unsynced
        assert await db.run(synchronous) == FULL  # nothing else changed: other commits wait

        def flush_fails(path: Path) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(database, "_fsync", flush_fails)
        with pytest.raises(database.StoreError, match="syncing"):
            await db.run_durable(write)  # the caller publishes nothing of it; a retry finds it
        assert db.unsynced  # and the next sync tries again
    finally:
        monkeypatch.setattr(database, "_fsync", real)
        await db.close()
    assert not db.unsynced


async def test_the_daemons_connection_keeps_savepoint_journals_in_memory(tmp_path):
    """A request's savepoint journal never spills to a temporary file (a write and a read of
    /var/tmp per request, and page images of its rows outside the database file)."""
    db = await database.Database(tmp_path / "db.sqlite3").open()
    try:
        assert await db.run(lambda conn: conn.execute("PRAGMA temp_store").fetchone()[0]) == 2  # MEMORY
    finally:
        await db.close()

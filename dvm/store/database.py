"""One SQLite connection on one dedicated thread, and the migrations that keep it current.

Each ``await`` into a database thread costs 60-90 us here, more than a request's crypto, so a
request's whole transaction runs as ONE call on the database thread (:meth:`Database.run`)
instead of awaiting statement by statement. aiosqlite offers that only through a private method,
so this module keeps aiosqlite's model (one connection, one worker thread, futures) on the
standard library's ``sqlite3`` and a one-thread executor.

``schema.sql`` (symlinked at the repository root) creates the current schema; ``MIGRATIONS``
steps an older ``PRAGMA user_version`` forward, one version per entry.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

from dvm.errors import DVMError

T = TypeVar("T")

SCHEMA_VERSION = 3
MIGRATIONS: dict[int, str] = {
    # 1 -> 2: account upkeep (email change with grace, backup history, preferences, deletion).
    1: """
    ALTER TABLE users ADD COLUMN bkp_previous TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN pending_email TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN grace_deadline INTEGER;
    ALTER TABLE users ADD COLUMN notify_login INTEGER NOT NULL DEFAULT 1 CHECK (notify_login IN (0, 1));
    CREATE INDEX users_pending_email ON users (pending_email) WHERE pending_email <> '';
    CREATE TABLE sessions_v2 (
        pubkey           TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose          TEXT NOT NULL CHECK (purpose IN ('signup', 'login', 'email_change', 'deletion')),
        state            TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'consumed', 'locked')),
        code_hmac        TEXT NOT NULL,
        code_sent_at     INTEGER NOT NULL,
        code_expires_at  INTEGER NOT NULL,
        attempts         INTEGER NOT NULL CHECK (attempts >= 0),
        verified_at      INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    INSERT INTO sessions_v2 SELECT * FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v2 RENAME TO sessions;
    CREATE INDEX sessions_user ON sessions (user_id);
    """,
    # 2 -> 3: the admin audit log; who is sending a queued mail.
    2: """
    ALTER TABLE mail ADD COLUMN claimed_by TEXT;
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT ''
    );
    """,
}
"""``{from_version: sql}``: each entry steps the schema one version, inside one transaction."""

BUSY_TIMEOUT_MS = 5000


class StoreError(DVMError):
    """The database is unusable (locked past the timeout, disk full, newer schema...)."""


def schema_sql() -> str:
    return resources.files("dvm.store").joinpath("schema.sql").read_text(encoding="utf-8")


def connect(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with foreign keys on, creating or migrating the schema.

    The connection is in autocommit mode: every write goes through :func:`immediate`.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a committed reply or mail survives power loss
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    return conn


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Create the schema on an empty database or step it to SCHEMA_VERSION."""
    version = user_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema {version} is newer than this sigit-dvm ({SCHEMA_VERSION})")
    if version == 0:
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema_sql()}\nCOMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if user_version(conn) != SCHEMA_VERSION:  # not just another process winning the race
                raise
        return
    while version < SCHEMA_VERSION:
        # executescript would COMMIT an open transaction first, so the script carries its own.
        script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        try:
            conn.executescript(script)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version = user_version(conn)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "request") -> Iterator[sqlite3.Connection]:
    """A nested unit inside a transaction: rolled back alone if its body raises."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


class Database:
    """Runs functions against one connection on one thread; ``await db.run(fn)`` is one hop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigit-db")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> Database:
        self._conn = await self._submit(lambda: connect(self.path))
        return self

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread and return its result."""
        conn = self._conn
        if conn is None:
            raise StoreError("database is not open")
        return await self._submit(lambda: fn(conn))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._submit(conn.close)
        self._executor.shutdown(wait=True)

    async def _submit(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

"""The daemon's SQLite connection, and the migrations that keep a database current.

A request's whole transaction (a batch of them, group-committed) is ONE call,
:meth:`Database.run`, never a statement per ``await``. The call runs on the event loop's own
thread. A dedicated database thread (aiosqlite's model) was measured against it end to end on 2
cores (docs/performance.md): every sqlite3 call releases the GIL and has to win it back from the
event loop, and the hand-offs cost the daemon about 10% more CPU and the requests more time
waiting inside it than the transactions take. A transaction here is short (under a millisecond
a request, a few tens for the largest batch); a lock held by another process is waited for at
most ``busy_timeout_ms``, after which the caller's retry takes over.

``schema.sql`` (symlinked at the repository root) creates the current schema; ``MIGRATIONS``
steps an older ``PRAGMA user_version`` forward, one version per entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Protocol, TypeVar

from dvm.errors import DVMError
from dvm.outage import REMINDER_S, Outage, one_line

T = TypeVar("T")

log = logging.getLogger("sigit.store")

SCHEMA_VERSION = 9
MIGRATION_8 = """
ALTER TABLE users ADD COLUMN auth_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN claim_pubkey TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN claim_backup TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN auth_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
UPDATE sessions SET
    claim_pubkey = (SELECT u.pubkey FROM users u WHERE u.id = sessions.user_id),
    claim_backup = (SELECT u.bkp FROM users u WHERE u.id = sessions.user_id)
    WHERE purpose = 'register' AND user_id IN (SELECT id FROM users WHERE activated = 0);
UPDATE users SET pubkey = '', bkp = '' WHERE activated = 0;
ALTER TABLE mail ADD COLUMN lang TEXT NOT NULL DEFAULT '';
ALTER TABLE code_sends ADD COLUMN address TEXT NOT NULL DEFAULT '';
CREATE TABLE codes (
    id          INTEGER PRIMARY KEY,
    mailbox     TEXT NOT NULL,
    address     TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('signup', 'login', 'email_change', 'deletion')),
    code_hmac   TEXT NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    long        INTEGER NOT NULL DEFAULT 0 CHECK (long IN (0, 1)),
    minted_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX codes_mailbox ON codes (mailbox, minted_at);
CREATE INDEX codes_expires ON codes (expires_at);
CREATE TABLE seals (
    id          TEXT PRIMARY KEY,
    until       INTEGER NOT NULL
);
"""

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
    # 3 -> 4: admin actions (suspension, blocks, last login) and GDPR erasure of audit rows.
    3: """
    ALTER TABLE users ADD COLUMN suspended_at INTEGER;
    ALTER TABLE users ADD COLUMN last_login_at INTEGER;
    ALTER TABLE audit ADD COLUMN user_id TEXT;
    UPDATE audit SET user_id = target WHERE action IN ('change-email', 'delete-user');
    UPDATE audit SET user_id = substr(detail, 6) WHERE detail LIKE 'user %';
    CREATE INDEX audit_user ON audit (user_id) WHERE user_id IS NOT NULL;
    CREATE INDEX mail_orphans ON mail (recipient) WHERE user_id IS NULL;
    CREATE TABLE blocks (
        value       TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
        reason      TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        actor       TEXT NOT NULL
    );
    CREATE TABLE erased_addresses (
        address_hash TEXT PRIMARY KEY,
        erased_at    INTEGER NOT NULL,
        erased_by    TEXT NOT NULL
    );
    CREATE TABLE meta (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    INSERT INTO meta (name, value) VALUES ('erasure_salt', lower(hex(randomblob(32))));
    """,
    # 4 -> 5: private-mode decoy sessions (no user) and the mailbox each session's codes go to;
    # code caps per canonical mailbox (exact), domain and in all (per minute); the daily guessing
    # budget. The old per-account send counters are dropped (they lapse within the hour anyway).
    4: """
    CREATE TABLE sessions_v4 (
        pubkey           TEXT PRIMARY KEY,
        user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
        purpose          TEXT NOT NULL CHECK (purpose IN ('signup', 'login', 'email_change', 'deletion')),
        state            TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'consumed', 'locked')),
        code_hmac        TEXT NOT NULL,
        code_sent_at     INTEGER NOT NULL,
        code_expires_at  INTEGER NOT NULL,
        attempts         INTEGER NOT NULL CHECK (attempts >= 0),
        verified_at      INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        decoy            INTEGER NOT NULL DEFAULT 0 CHECK (decoy IN (0, 1))
    );
    INSERT INTO sessions_v4 (pubkey, user_id, purpose, state, code_hmac, code_sent_at, code_expires_at,
        attempts, verified_at, created_at, updated_at)
        SELECT pubkey, user_id, purpose, state, code_hmac, code_sent_at, code_expires_at, attempts,
        verified_at, created_at, updated_at FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v4 RENAME TO sessions;
    CREATE INDEX sessions_user ON sessions (user_id);
    DROP TABLE code_sends;
    CREATE TABLE code_sends (
        mailbox  TEXT NOT NULL,
        sent_at  INTEGER NOT NULL
    );
    CREATE INDEX code_sends_mailbox ON code_sends (mailbox, sent_at);
    CREATE INDEX code_sends_time ON code_sends (sent_at);
    CREATE TABLE code_send_minutes (
        scope    TEXT NOT NULL,
        minute   INTEGER NOT NULL,
        sends    INTEGER NOT NULL,
        PRIMARY KEY (scope, minute)
    ) WITHOUT ROWID;
    CREATE TABLE code_failures (
        subject  TEXT NOT NULL,
        at       INTEGER NOT NULL
    );
    CREATE INDEX code_failures_subject ON code_failures (subject, at);
    CREATE INDEX requests_processed ON requests (processed_at);
    """,
    # 5 -> 6: SIGit's one-event signup (register sessions) and last_seen (activation or the last
    # login), set for every account already activated from what is known of it; sessions that
    # let an ephemeral key act for its account (auth_until).
    5: """
    ALTER TABLE users ADD COLUMN last_seen INTEGER;
    UPDATE users SET last_seen = COALESCE(last_login_at, updated_at) WHERE activated = 1;
    CREATE TABLE sessions_v5 (
        pubkey           TEXT PRIMARY KEY,
        user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
        purpose          TEXT NOT NULL
            CHECK (purpose IN ('signup', 'login', 'email_change', 'deletion', 'register')),
        state            TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'consumed', 'locked')),
        code_hmac        TEXT NOT NULL,
        code_sent_at     INTEGER NOT NULL,
        code_expires_at  INTEGER NOT NULL,
        attempts         INTEGER NOT NULL CHECK (attempts >= 0),
        verified_at      INTEGER,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        decoy            INTEGER NOT NULL DEFAULT 0 CHECK (decoy IN (0, 1)),
        auth_until       INTEGER
    );
    INSERT INTO sessions_v5 (pubkey, user_id, purpose, state, code_hmac, code_sent_at, code_expires_at,
        attempts, verified_at, created_at, updated_at, subject, decoy)
        SELECT pubkey, user_id, purpose, state, code_hmac, code_sent_at, code_expires_at, attempts,
        verified_at, created_at, updated_at, subject, decoy FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v5 RENAME TO sessions;
    CREATE INDEX sessions_user ON sessions (user_id);
    """,
    # 6 -> 7: leases, so that of several daemons on one database only one runs each singleton
    # (reply retries, pruning, the announcement); PostgreSQL databases start here.
    6: """
    CREATE TABLE leases (
        name    TEXT PRIMARY KEY,
        holder  TEXT NOT NULL,
        until   INTEGER NOT NULL
    );
    """,
    # 7 -> 8: owners first. Codes belong to mailboxes (codes), seals are used once (seals),
    # sessions are revocable (auth_epoch), a pending register claims no key (its key and backup
    # move from the unfinished user to its sessions), and mail has a language.
    7: MIGRATION_8,
    # 8 -> 9: the per-minute code counters get a writer's row each (shard), so that daemons
    # sharing a PostgreSQL database never wait for one another's counter row (SQLite: always 0);
    # a request reads its exact address's codes and sends by an index (a flood of other
    # addresses of the mailbox costs it nothing).
    8: """
    CREATE TABLE code_send_minutes_v9 (
        scope    TEXT NOT NULL,
        minute   INTEGER NOT NULL,
        shard    INTEGER NOT NULL DEFAULT 0,
        sends    INTEGER NOT NULL,
        PRIMARY KEY (scope, minute, shard)
    ) WITHOUT ROWID;
    INSERT INTO code_send_minutes_v9 (scope, minute, sends)
        SELECT scope, minute, sends FROM code_send_minutes;
    DROP TABLE code_send_minutes;
    ALTER TABLE code_send_minutes_v9 RENAME TO code_send_minutes;
    CREATE INDEX codes_address ON codes (mailbox, address, minted_at);
    CREATE INDEX code_sends_address ON code_sends (mailbox, address, sent_at);
    """,
}
"""``{from_version: sql}``: each entry steps the schema one version, inside one transaction."""

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another one's write lock (the CLI, scripts)."""
DAEMON_BUSY_TIMEOUT_MS = 250
"""The daemon's wait, shorter: it blocks the event loop, and a refused batch is retried anyway."""
SLOW_CALL_S = 0.1
"""A database call at least this long is logged: the event loop (every relay, mail) waited for it."""
SYNC_WINDOW_S = 1.0
"""An unsynced commit (:meth:`Database.run_unsynced`) reaches the disk within this long."""


class StoreError(DVMError):
    """The database is unusable (locked past the timeout, disk full, newer schema...)."""


class Conflict(StoreError):
    """A write broke a uniqueness or foreign-key rule (PostgreSQL's IntegrityError)."""


DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, StoreError)
"""What a failing database call raises, on either backend."""


def dialect(conn: object) -> str:
    """``"sqlite"`` or ``"postgresql"``: the few statements that differ ask this."""
    return str(getattr(conn, "dialect", "sqlite"))


def schema_sql() -> str:
    return resources.files("dvm.store").joinpath("schema.sql").read_text(encoding="utf-8")


def connect(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with foreign keys on, creating or migrating the schema.

    The connection is in autocommit mode: every write goes through :func:`immediate`. A new
    database file is created readable by its owner only (0600); SQLite gives its WAL and shared
    memory files the same mode.
    """
    if str(path) != ":memory:":
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Takes effect on a new database only (before its first table): freed pages can then be given
    # back (dvm.store.retention); an older database is converted once by the daemon.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # a committed reply or mail survives power loss
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")  # erased rows and scrubbed codes leave no trace in the file
    migrate(conn)
    # A savepoint keeps the pages it changes in a statement journal, which past 64 KiB spills to
    # a deleted temporary file in /var/tmp by default: for the daemon, a write and a read of that
    # file for every request of a batch (about 50 us a request, docs/performance.md), and for
    # everyone, images of rows (erased ones too) outside the file that secure_delete scrubs. In
    # memory instead: a transaction's journal is a few MiB at most. Migrations above sort in files.
    conn.execute("PRAGMA temp_store = MEMORY")
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


def unavailable(exc: BaseException) -> bool:
    """Whether a failed call is the database being unavailable (locked past the wait, stopped,
    unreachable, full): an outage the callers' retries ride out, not a bug."""
    if isinstance(exc, Conflict):
        return False
    return isinstance(exc, sqlite3.OperationalError | StoreError)


def operation(fn: Callable[..., object]) -> str:
    """A call's name for the log: ``mailer.outbox.claim_due`` for ``partial(outbox.claim_due,
    ...)``, the enclosing function for a lambda."""
    while isinstance(fn, partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", type(fn).__name__).split(".<locals>")[0]
    module = str(getattr(fn, "__module__", "") or "").removeprefix("dvm.")
    return f"{module}.{name}" if module else name


class CallLog:
    """What one store's calls put in the log: the database's outages as episodes
    (:class:`~dvm.outage.Outage`), and slow calls, each operation at most once a minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.outage = Outage(log, "database", clock=clock)
        self._clock = clock
        self._slow: dict[str, tuple[float, int]] = {}  # operation -> (last logged, not logged since)

    def slow(self, name: str, elapsed_s: float, note: str) -> None:
        now = self._clock()
        told, untold = self._slow.get(name, (-REMINDER_S, 0))
        if now - told < REMINDER_S:
            self._slow[name] = (told, untold + 1)
            return
        more = f"; {untold} more slow call(s) of it in the last {now - told:.0f} s" if untold else ""
        log.warning("slow database call: %s took %.0f ms%s%s", name, elapsed_s * 1000, note, more)
        self._slow[name] = (now, 0)


@contextmanager
def observed(
    fn: Callable[..., object],
    observe: Callable[[float], None] | None,
    note: str = "",
    calls: CallLog | None = None,
) -> Iterator[None]:
    """Time one database call: report its seconds to ``observe`` (the metrics); with ``calls``,
    tell it whether the database worked (outages) and whether the call was slow."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        elapsed = time.perf_counter() - started
        if observe is not None:
            observe(elapsed)
        calls = calls or CallLog()
        # The usual case, every request: nothing to tell, so no name to build.
        if error is not None or calls.outage.since is not None or elapsed >= SLOW_CALL_S:
            _tell(calls, operation(fn), error, elapsed, note)


def _tell(calls: CallLog, name: str, error: BaseException | None, elapsed: float, note: str) -> None:
    if error is None:
        calls.outage.ok(name)  # only an operation that failed tells that it works again
    elif unavailable(error):  # the outage says it; a slow failure is no news beside it
        calls.outage.failed(f"{one_line(str(error)) or type(error).__name__} (in {name})", name)
    if elapsed >= SLOW_CALL_S and (error is None or not unavailable(error)):
        calls.slow(name, elapsed, note)


KEYED_BEGIN = "BEGIN /* keyed */"
"""How :func:`immediate` begins a keyed transaction on PostgreSQL (``dvm.store.postgres``)."""


@contextmanager
def immediate(
    conn: sqlite3.Connection, *, exclusive: bool = True, keyed: bool = False
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception.

    The transaction holds the store's one write lock. On PostgreSQL that is an advisory lock of
    every daemon's (``dvm.store.postgres``): ``keyed=True`` holds it shared, for a transaction
    that locks the keys it touches itself (decisions: ``dvm.store.keylocks``), so that such
    transactions wait only for one another's keys and for exclusive holders (the CLI, the
    retention pass); ``exclusive=False`` skips it, for a transaction that needs only row locks
    (the mail outbox's claims and marks). SQLite has one lock for all."""
    if dialect(conn) == "sqlite":
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn.execute(KEYED_BEGIN if keyed else "BEGIN IMMEDIATE" if exclusive else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def unsynced(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Transactions in the block commit without waiting for fsync (SQLite ``synchronous =
    NORMAL``): written to the WAL, so a killed process loses none of them, but a power loss may,
    until the WAL is next synced (see :meth:`Database.run_unsynced`). Other backends: unchanged."""
    if dialect(conn) != "sqlite":
        yield conn
        return
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        yield conn
    finally:
        conn.execute("PRAGMA synchronous = FULL")  # connect()'s: every other commit waits for fsync


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


PAGE_CACHE_KIB = 32 * 1024
"""The daemon's page cache (SQLite's default is 2 MiB): part of its memory, within the unit's 512M."""


class Database:
    """The daemon's one connection; ``await db.run(fn)`` runs ``fn(conn)`` as one call (see above).

    The methods are coroutines so that callers await a database step like any other.
    :class:`dvm.store.postgres.PostgresDatabase` is the other (``dvm.store.backends.store_for``).
    """

    dialect = "sqlite"
    shared = False
    """One daemon per file (a lock file sees to it): no leases, and a new run takes over claims."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = DAEMON_BUSY_TIMEOUT_MS,
        sync_window_s: float = SYNC_WINDOW_S,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.sync_window_s = sync_window_s
        self._conn: sqlite3.Connection | None = None
        self.observe: Callable[[float], None] | None = None  # each call's seconds (dvm.metrics)
        self.calls = CallLog()  # outages and slow calls, as the log tells them
        self._unsynced = False  # a commit since the WAL was last synced did not wait for fsync
        self._syncer: asyncio.Task[None] | None = None

    async def open(self) -> Database:
        """Connect and migrate, waiting for locks as long as the CLI does (nothing is served yet),
        then shorten the wait for serving."""
        conn = connect(self.path)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        # Every request inserts into a dozen indexes on random keys (event ids, keys, addresses'
        # hashes); SQLite's default 2 MiB page cache holds few of their pages once the file is
        # tens of MiB. At 15,000 signups (56 MB) this cache took a request 681-805 us -> 654-711.
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        self._conn = conn
        return self

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` now, on this thread, and return its result; log it if it was slow."""
        conn = self._conn
        if conn is None:
            raise StoreError("database is not open")
        with observed(fn, self.observe, " (the event loop waited)", self.calls):  # on the loop's thread
            return fn(conn)

    async def run_unsynced(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`run`, with ``fn``'s commits not waiting for fsync (:func:`unsynced`): they cost
        the event loop their writes, not a disk's flush (about 1 ms here). A killed process loses
        none of them; a power loss loses at most those of the last ``sync_window_s``, since the
        WAL is synced that long after the first of them (in a thread, off the loop) if no fsync'd
        commit (every request batch) did it first. For bookkeeping that may be repeated, never
        for a decision: a mail's outcome, a reply's publication."""
        result = await self.run(partial(_unsynced_call, fn))
        self._unsynced = True
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.ensure_future(self._sync_later())
        return result

    async def sync(self) -> None:
        """Flush the WAL to the disk now (in a thread): every commit so far survives a power loss."""
        self._unsynced = False
        wal = Path(f"{self.path}-wal")
        await asyncio.to_thread(_fsync, wal)

    @property
    def unsynced(self) -> bool:
        """Whether a commit made since the WAL was last synced did not wait for fsync."""
        return self._unsynced

    async def _sync_later(self) -> None:
        """Sync ``sync_window_s`` after an unsynced commit, and again while more came meanwhile
        (one that came during a sync may have missed it)."""
        while self._unsynced:
            await asyncio.sleep(self.sync_window_s)
            try:
                await self.sync()
            except OSError as exc:  # the disk refused: try again in a window
                self._unsynced = True
                log.warning("syncing the database's WAL failed (%s); retrying", exc)

    async def close(self) -> None:
        if self._syncer is not None and not self._syncer.done():
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
        if self._unsynced and self._conn is not None:
            await self.sync()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _unsynced_call(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    with unsynced(conn):
        return fn(conn)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # not in WAL mode, or nothing written yet: nothing to sync
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def run_unsynced(store: Store, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn`` on ``store`` with its commits not waiting for fsync where the backend runs them on
    the event loop (SQLite: :meth:`Database.run_unsynced`); elsewhere as :meth:`Store.run`."""
    if isinstance(store, Database):
        return await store.run_unsynced(fn)
    return await store.run(fn)


class Store(Protocol):
    """Either backend's database: :class:`Database` (SQLite) or ``postgres.PostgresDatabase``.

    ``fn`` in :meth:`run` receives a connection with the ``sqlite3.Connection`` methods the
    repository uses; on PostgreSQL it is ``postgres.PgConnection``."""

    dialect: str
    shared: bool
    observe: Callable[[float], None] | None

    async def open(self) -> Store: ...

    @property
    def is_open(self) -> bool: ...

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def close(self) -> None: ...

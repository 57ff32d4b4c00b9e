"""The PostgreSQL backend: the same repository SQL, the same transactions, on a shared database.

Why this shape (measured with ``scripts/bench pgdriver``, docs/performance.md): the store's
repository is plain synchronous functions on a connection, and a request's transaction is one
call. Run on PostgreSQL with psycopg 3 on a dedicated database thread, a transaction costs one
hand-off to that thread, and the daemon spent less CPU per signup-shaped transaction than with
asyncpg or psycopg's async API, which hand the event loop every statement. So there is one
repository, and this module gives it what it expects of a ``sqlite3.Connection``:

- ``?`` placeholders become ``%s`` and ``LIKE`` becomes ``ILIKE`` (SQLite's LIKE ignores ASCII
  case); ``date(x, 'unixepoch')`` becomes PostgreSQL's spelling. Everything else the repository
  writes is SQL both engines take (upserts, ``RETURNING``, ``FILTER``, row values).
- ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes ``BEGIN`` plus a transaction-level
  advisory lock, :data:`WRITE_LOCK`. Every daemon and the CLI then decide one transaction at a time,
  exactly as on SQLite, so the account machine's invariants hold across daemons unchanged. The mail
  outbox's claims skip that lock and use ``FOR UPDATE SKIP LOCKED`` instead (``dvm.mailer.outbox``).
- Rows read like ``sqlite3.Row`` (by index and by name); booleans come back as 0/1 and integral
  numerics as ints, as SQLite gives them.
- Errors become :class:`~dvm.store.database.StoreError` (:class:`~dvm.store.database.Conflict` for
  a uniqueness or foreign-key violation), so callers catch one hierarchy for both backends.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

from dvm.outage import one_line
from dvm.store.database import SCHEMA_VERSION, CallLog, Conflict, StoreError, observed
from dvm.store.leases import MAX_CLOCK_SKEW_S

try:  # an optional dependency: pip install 'sigit-dvm[postgresql]'
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

T = TypeVar("T")
log = logging.getLogger("sigit.store")

WRITE_LOCK = (0x51617, 1)
"""``pg_advisory_xact_lock(classid, objid)`` taken by every writing transaction: the one writer."""
MIGRATE_LOCK = (0x51617, 2)
"""Held (session level) while a schema is created or migrated: two daemons starting race safely."""
FIRST_VERSION = 7
"""The schema version PostgreSQL databases were first created at; ``MIGRATIONS`` steps from it."""
MIGRATIONS: dict[int, str] = {}
"""``{from_version: sql}`` for PostgreSQL, the twin of ``dvm.store.database.MIGRATIONS`` from
:data:`FIRST_VERSION` on: a schema change adds one entry to each (a test checks both reach
``SCHEMA_VERSION`` with the same tables and columns)."""


def schema_sql() -> str:
    return resources.files("dvm.store").joinpath("schema_postgresql.sql").read_text(encoding="utf-8")


def available() -> bool:
    """Whether the driver (psycopg) is installed."""
    return psycopg is not None


def _require_driver() -> None:
    if psycopg is None:
        raise StoreError(
            "store.url names PostgreSQL, but psycopg is not installed: pip install 'sigit-dvm[postgresql]'"
        )


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%|\bLIKE\b|\bdate\((\w+(?:\.\w+)?), 'unixepoch'\)")


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite's spelling of a statement to PostgreSQL's (see the module docstring)."""

    def swap(m: re.Match[str]) -> str:
        text = m.group(0)
        if text.startswith("'"):
            return text.replace("%", "%%")
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if text == "LIKE":
            return "ILIKE"
        return f"to_char(to_timestamp({m.group(1)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    return _PLACEHOLDER.sub(swap, sql)


def _value(v: object) -> object:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Decimal) and v == v.to_integral_value():
        return int(v)
    return v


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"names": {name: i for i, name in enumerate(names)}, "__slots__": ()})


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    result = cursor.pgresult  # its field names directly: ``description`` builds objects per call
    count = result.nfields if result is not None else 0
    cls = _row_class(tuple((result.fname(i) or b"").decode() for i in range(count)))

    def make(values: Sequence[Any]) -> Row:
        return cls(_value(v) for v in values)

    return make


class Cursor:
    """What the repository uses of a ``sqlite3.Cursor``."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def _returns_rows(self) -> bool:
        result = self._cursor.pgresult
        return result is not None and result.nfields > 0

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._returns_rows else None

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall()) if self._returns_rows else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


def _translate_error(exc: Exception) -> StoreError:
    if isinstance(exc, pg_errors.IntegrityError):
        return Conflict(str(exc).strip())
    return StoreError(f"PostgreSQL: {one_line(str(exc)) or type(exc).__name__}")  # libpq's have several lines


class PgConnection:
    """A psycopg connection that takes the repository's SQLite-flavoured statements."""

    dialect = "postgresql"

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            if sql == "BEGIN IMMEDIATE":
                return self._begin_locked()
            # Always with parameters (maybe none): psycopg then reads the '%%' translate() wrote.
            return Cursor(self.raw.execute(translate(sql), _params(params)))
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc

    def _begin_locked(self) -> Cursor:
        """BEGIN and take the write lock; like SQLite's BEGIN IMMEDIATE, a lock not won in time
        leaves no transaction open."""
        self.raw.execute("BEGIN")
        try:
            return Cursor(self.raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITE_LOCK))
        except BaseException:
            if not self.broken:
                self.raw.execute("ROLLBACK")
            raise

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        rows = [_params(p) for p in seq]
        cursor = self.raw.cursor()
        try:
            if rows:
                cursor.executemany(translate(sql), rows)
            return Cursor(cursor)
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc

    def close(self) -> None:
        self.raw.close()


KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3"}
"""TCP keepalives unless the URL sets its own: a server gone silent is noticed in ~25 s, not hours."""
IDLE_IN_TRANSACTION_S = 15
"""The server ends a session idle inside a transaction this long: a daemon whose machine vanished
mid-transaction (no FIN, no RST) cannot keep the write lock from the others. Every transaction
here runs in one call and is never idle that long."""
DAEMON_LOCK_TIMEOUT_MS = 5000
"""How long the daemon waits for the write lock (another daemon's batch, the CLI) before its
batch fails and is retried: the twin of SQLite's busy timeout, longer for a network round trip."""
CLI_LOCK_TIMEOUT_MS = 30_000


def connect(
    url: str, password: str = "", *, migrate_schema: bool = True, lock_timeout_ms: int = CLI_LOCK_TIMEOUT_MS
) -> PgConnection:
    """Connect (autocommit: every write goes through an explicit transaction, as on SQLite) and
    create or migrate the schema unless ``migrate_schema`` is false."""
    _require_driver()
    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
        extra = {k: v for k, v in KEEPALIVES.items() if k not in given}
        if password:
            extra["password"] = password
        conninfo = psycopg.conninfo.make_conninfo(url, **extra)
    except psycopg.Error as exc:
        raise StoreError(f"store.url: {str(exc).strip()}") from exc
    try:
        # psycopg prepares a statement on its fifth use (the repository's SQL is a fixed set):
        # the server then skips parsing and planning. Behind PgBouncer in transaction mode, that
        # needs PgBouncer 1.21 or newer with max_prepared_statements set.
        raw = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to PostgreSQL: {one_line(str(exc))}"
        ) from exc  # libpq: several lines
    raw.row_factory = _row_factory
    conn = PgConnection(raw)
    try:
        # Text in any other encoding comes back as bytes (SQL_ASCII) or cannot hold a non-ASCII
        # address (LATIN1...): refuse the database rather than fail on every request.
        encoding = raw.info.parameter_status("server_encoding")
        if encoding != "UTF8":
            raise StoreError(
                f"the PostgreSQL database's encoding is {encoding}, not UTF8: create it with "
                "createdb --encoding=UTF8 --template=template0 (docs/operations.md)"
            )
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_S * 1000}")
        if migrate_schema:  # waits for another's migration as long as it takes (no lock_timeout yet)
            migrate(conn)
        else:
            check_version(conn)
        conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
    except BaseException:
        raw.close()
        raise
    return conn


def clock_skew(conn: PgConnection, clock: Callable[[], float]) -> float:
    """Seconds ``clock`` is ahead of the database server's clock (negative: behind)."""
    before = clock()
    server = float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
    return (before + clock()) / 2 - server


def check_clock(conn: PgConnection, clock: Callable[[], float]) -> float:
    skew = clock_skew(conn, clock)
    if abs(skew) > MAX_CLOCK_SKEW_S:
        raise StoreError(
            f"this machine's clock is {skew:+.0f} s off the database server's (more than "
            f"{MAX_CLOCK_SKEW_S} s): daemons sharing a database judge each other's leases by "
            "their clocks; synchronise them (NTP)"
        )
    if abs(skew) > 1:
        log.warning("this machine's clock is %+.1f s off the database server's", skew)
    return skew


def user_version(conn: PgConnection) -> int:
    """The schema version (0: no sigit-dvm schema here yet)."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def check_version(conn: PgConnection) -> int:
    version = user_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema {version} is newer than this sigit-dvm ({SCHEMA_VERSION})")
    return version


def migrate(conn: PgConnection) -> int:
    """Create the schema on an empty database or step it to SCHEMA_VERSION; return how many steps.

    Under a session advisory lock, so daemons starting together wait for one another."""
    conn.execute("SELECT pg_advisory_lock(?, ?)", MIGRATE_LOCK)
    try:
        version = check_version(conn)
        steps = 0
        if version == 0:
            _script(conn, schema_sql(), SCHEMA_VERSION, salt=secrets.token_hex(32))
            return 1
        while version < SCHEMA_VERSION:
            _script(conn, MIGRATIONS[version], version + 1)
            version, steps = version + 1, steps + 1
        return steps
    finally:
        conn.execute("SELECT pg_advisory_unlock(?, ?)", MIGRATE_LOCK)


def _script(conn: PgConnection, sql: str, version: int, salt: str | None = None) -> None:
    try:
        with conn.raw.transaction():
            conn.raw.execute(sql)
            if salt is not None:
                conn.raw.execute("INSERT INTO meta (name, value) VALUES ('erasure_salt', %s)", (salt,))
            conn.raw.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
    except psycopg.Error as exc:
        raise _translate_error(exc) from exc


class PostgresDatabase:
    """The daemon's PostgreSQL connection; ``await db.run(fn)`` runs ``fn(conn)`` on its own thread.

    One connection and one thread: calls run one at a time, in order, like the SQLite store's.
    A broken connection (the server restarted, a failover) is replaced on the next call; the call
    that saw it fails with :class:`StoreError` and its caller's retry takes over.
    """

    dialect = "postgresql"
    shared = True
    """Other daemons may use this database: singletons hold leases, claims are never stolen."""

    def __init__(self, url: str, password: str = "", clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._password = password
        self._clock = clock
        self._conn: PgConnection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sigit-db")
        self._lock = asyncio.Lock()
        self._opened = False
        self.observe: Callable[[float], None] | None = None
        self.calls = CallLog()  # outages and slow calls, as the log tells them

    async def open(self) -> PostgresDatabase:
        self._conn = await asyncio.get_running_loop().run_in_executor(self._thread, self._connect, True)
        self._opened = True
        return self

    @property
    def is_open(self) -> bool:
        return self._opened

    def _connect(self, migrate_schema: bool) -> PgConnection:
        conn = connect(
            self.url, self._password, migrate_schema=migrate_schema, lock_timeout_ms=DAEMON_LOCK_TIMEOUT_MS
        )
        try:
            check_clock(conn, self._clock)
        except BaseException:
            conn.close()
            raise
        return conn

    def _call(self, fn: Callable[[PgConnection], T]) -> T:
        conn = self._conn
        if conn is None or conn.broken:
            if conn is not None:
                conn.raw.close()
                self._conn = None
            self._conn = conn = self._connect(False)
            log.info("database: reconnected to PostgreSQL")
        try:
            return fn(conn)
        except BaseException:
            if conn.in_transaction and not conn.broken:  # never leave a transaction open
                try:
                    conn.raw.execute("ROLLBACK")
                except psycopg.Error:
                    conn.raw.close()
            raise

    async def run(self, fn: Callable[[Any], T]) -> T:
        if not self._opened:
            raise StoreError("database is not open")
        async with self._lock:
            with observed(fn, self.observe, "", self.calls):
                try:
                    return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn)
                except psycopg.Error as exc:
                    raise _translate_error(exc) from exc

    async def close(self) -> None:
        self._opened = False
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        await asyncio.to_thread(self._thread.shutdown, True)

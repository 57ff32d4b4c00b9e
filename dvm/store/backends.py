"""Which backend a setting names: the SQLite file at ``store.path`` (the default), or the
PostgreSQL database at ``store.url`` (several daemons share it: docs/operations.md)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from dvm.store import database, postgres
from dvm.store.database import Store


def store_for(url: str, path: Path, password: str = "", clock: Callable[[], float] = time.time) -> Store:
    """The database ``store.url`` names (PostgreSQL), else the SQLite file at ``path``."""
    if url:
        return postgres.PostgresDatabase(url, password, clock)
    return database.Database(path)


def version_of(url: str, path: Path, password: str = "") -> int:
    """The schema version of a database (0: empty or not there yet), without migrating it."""
    if url:
        conn = postgres.connect(url, password, migrate_schema=False)
        try:
            return postgres.user_version(conn)
        finally:
            conn.close()
    if not path.exists():
        return 0
    raw = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)  # a path may hold ? or #
    try:
        return database.user_version(raw)
    finally:
        raw.close()


def connect_any(url: str, path: Path, password: str = "") -> sqlite3.Connection:
    """A connection for the CLI: PostgreSQL at ``url``, else the SQLite file at ``path``.

    Typed as ``sqlite3.Connection`` because the repository is: the PostgreSQL connection gives
    the part of it the repository uses (the store contract tests run every function on both)."""
    if url:
        return cast(sqlite3.Connection, postgres.connect(url, password))
    return database.connect(path)

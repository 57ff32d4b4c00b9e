"""What the daemon remembers between its transactions, and what one batch computes once.

Nearly every request that may mail a code reads the block list and the per-minute code
counters of its domain and of everyone, and hashes its mailbox and domain into salted counter
keys several times over. On SQLite (one daemon per file) the block list and the counters change
only through this daemon's own writes, or through another connection's commit (the admin CLI),
which ``PRAGMA data_version`` reveals at the start of every batch: then everything remembered
is dropped. So :class:`Memo` keeps the block list (when it is small) and each domain's counted
minutes in memory, updated by the daemon's own counter writes as they are made; a request's
savepoint that rolls back takes its counts back out, and a transaction that fails drops it all.
On PostgreSQL several daemons write the counters, so nothing is remembered there: every read
goes to the database, as before.

:class:`Batch` is one transaction's view: the salt read once and every salted key and canonical
mailbox computed once, whichever row (session, code, send, failure) needs it.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from dvm.accounts.decision import Sends
from dvm.protocol.email_address import canonical_mailbox
from dvm.store import repository
from dvm.store.database import dialect

MAX_SCOPES = 4096
"""Scopes (domains, and ``*``) whose counted minutes are kept; the least recently used go first."""
MAX_BLOCKS = 10_000
"""A block list longer than this is not held in memory: each address is looked up instead."""
BLOCK_LIST = "SELECT value FROM blocks LIMIT ?"
"""The one statement that reads a whole table: the block list, once after each change."""


@dataclass(slots=True)
class _Minutes:
    """One scope's codes per minute, for every minute after ``after`` (minutes since the epoch)."""

    after: int
    sends: dict[int, int] = field(default_factory=dict)


class Memo:
    """Rows only this daemon's writes change, remembered across transactions (SQLite only).

    :meth:`batch` opens each transaction's view; :meth:`forget` drops everything (a transaction
    that did not commit).
    """

    def __init__(self, *, max_scopes: int = MAX_SCOPES, max_blocks: int = MAX_BLOCKS) -> None:
        self.max_scopes = max_scopes
        self.max_blocks = max_blocks
        self._version: int | None = None
        self._blocks: frozenset[str] | None = None
        self._blocks_loaded = False  # and, with _blocks None, too many to hold
        self._minutes: OrderedDict[str, _Minutes] = OrderedDict()

    def batch(self, conn: sqlite3.Connection) -> Batch:
        """The view of the transaction just begun on ``conn``; call it inside the transaction,
        so that no other connection can commit between the check and the reads."""
        salt = repository.erasure_salt(conn)
        if dialect(conn) != "sqlite":
            return Batch(conn, salt)
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:  # another connection committed: it may have changed anything
            self.forget()
            self._version = version
        return Batch(conn, salt, self)

    def forget(self) -> None:
        self._blocks, self._blocks_loaded = None, False
        self._minutes.clear()

    def nothing_blocked(self, conn: sqlite3.Connection) -> bool:
        """The block list is empty (the usual case: no address needs its keys computed)."""
        self._load_blocks(conn)
        return self._blocks is not None and not self._blocks

    def _load_blocks(self, conn: sqlite3.Connection) -> None:
        if not self._blocks_loaded:  # the whole list, once a change: not a scan per request
            self._blocks_loaded = True
            rows = conn.execute(BLOCK_LIST, (self.max_blocks + 1,)).fetchall()
            if len(rows) <= self.max_blocks:
                self._blocks = frozenset(row[0] for row in rows)

    def blocked(self, conn: sqlite3.Connection, keys: Sequence[str]) -> bool:
        self._load_blocks(conn)
        if self._blocks is None:
            return repository.any_blocked(conn, keys)
        return any(key in self._blocks for key in keys)

    def sends(self, conn: sqlite3.Connection, scope: str, since: int) -> Sends:
        minute = since // 60
        counted = self._minutes.get(scope)
        if counted is None or counted.after > minute:
            rows = conn.execute(
                "SELECT minute, sum(sends) FROM code_send_minutes WHERE scope = ? AND minute > ? "
                "GROUP BY minute",
                (scope, minute),
            )
            counted = _Minutes(minute, {int(m): int(n) for m, n in rows})
            self._minutes[scope] = counted
            if len(self._minutes) > self.max_scopes:
                self._minutes.popitem(last=False)
        else:
            self._minutes.move_to_end(scope)
            if counted.after < minute:  # minutes out of the window are never asked for again
                counted.sends = {m: n for m, n in counted.sends.items() if m > minute}
                counted.after = minute
        if not counted.sends:
            return Sends()
        return Sends(sum(counted.sends.values()), min(counted.sends) * 60)

    def count(self, scope: str, minute: int, sends: int) -> None:
        counted = self._minutes.get(scope)
        if counted is not None and minute > counted.after:
            left = counted.sends.get(minute, 0) + sends
            if left:
                counted.sends[minute] = left
            else:
                counted.sends.pop(minute, None)


class Batch:
    """One transaction's salted keys and counter reads (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, salt: str, memo: Memo | None = None) -> None:
        self._conn = conn
        self.salt = salt
        self._memo = memo
        self._keys: dict[str, str] = {}
        self._mailboxes: dict[str, str] = {}
        self._counted: list[tuple[str, int]] = []  # this request's counter writes, to take back

    def key(self, text: str) -> str:
        """:func:`repository.counter_key` of ``text``, each text hashed once a batch."""
        key = self._keys.get(text)
        if key is None:
            key = self._keys[text] = repository.counter_key(self.salt, text)
        return key

    def mailbox(self, address: str) -> str:
        """:func:`canonical_mailbox` of ``address``, once a batch."""
        box = self._mailboxes.get(address)
        if box is None:
            box = self._mailboxes[address] = canonical_mailbox(address)
        return box

    def blocked(self, address: str) -> bool:
        """:func:`repository.is_blocked`, from memory when the block list is held there."""
        if self._memo is not None and self._memo.nothing_blocked(self._conn):
            return False
        keys = repository.block_keys(address, self.mailbox(address))
        if self._memo is None:
            return repository.any_blocked(self._conn, keys)
        return self._memo.blocked(self._conn, keys)

    def sends(self, scope: str, since: int) -> Sends:
        """:func:`repository.minute_sends` for ``scope``, from memory where it may."""
        if self._memo is None:
            return repository.minute_sends(self._conn, scope, since)
        return self._memo.sends(self._conn, scope, since)

    def count_sends(self, scopes: Sequence[str], minute: int) -> None:
        """One more code in ``minute`` for each of ``scopes``: one statement, and remembered."""
        repository.count_minute_sends(self._conn, scopes, minute)
        if self._memo is not None:
            for scope in scopes:
                self._memo.count(scope, minute, 1)
                self._counted.append((scope, minute))

    def request(self) -> Batch:
        """One request's savepoint (``with batch.request():``): rolled back alone, its counts
        taken back out of memory. (A class, not a generator: it runs for every request.)"""
        return self

    def __enter__(self) -> None:
        self._counted.clear()
        self._conn.execute("SAVEPOINT request")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            self._conn.execute("RELEASE request")
            return
        self._conn.execute("ROLLBACK TO request")
        self._conn.execute("RELEASE request")
        if self._memo is not None:
            for scope, minute in self._counted:
                self._memo.count(scope, minute, -1)

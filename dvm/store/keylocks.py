"""What a decision locks on a shared database: its mailboxes, accounts, keys and request id.

On SQLite one writer decides at a time and nothing here runs. On PostgreSQL, daemons decide at
once; what keeps the account rules (one user per email, one activated account per key, a code
works once, a seal is carried once, a request is decided once) is that two decisions that read or
write the same rows take the same transaction-scoped advisory lock first, and wait for each other:

- the **request** (its event id): two daemons given the same event decide it once; the second
  finds the stored reply;
- the **session** of the event's key: requests from one key run one at a time;
- every **mailbox** whose codes, caps, wrong-code budget or owner it reads or writes (canonical,
  by its salted counter key): the address it names (an email change: the new one), its session's
  mailbox, the mailbox a code it mails goes to, the pending address a confirmation proves;
- every **account** it may write (a user id): its session's, and the one it acts for;
- every **key** it names or acts for (``register``, ``activate``, a session's claimed key, an
  account's signing key): one activated account per key;
- its **seal**, carried once.

The global code counters need no lock: each connection counts in rows of its own
(``code_send_minutes.shard``). Another account's pending change to a proven address is released
by a conditional update (:class:`~dvm.accounts.decision.ReleaseChange`), not by rewriting its
row, and the old address of an email change is only sent a notice: neither is locked.

A batch takes its locks in one statement (:func:`lock_batch`): the keys its requests name, and
those its rows give (each session's account, mailbox and claimed key, the account each signing
key holds), read by that same statement, all in one order (their hash), so two batches never wait
for each other in a circle. Rows can change between that read and the locks, and a code may go to
a mailbox no row named yet (a resend after the address changed, a deletion code to the account's
address): the store locks what is missing once it has loaded a request's rows under the others
(:meth:`KeyLocks.cover_rows`, :meth:`KeyLocks.cover_mailbox`), out of order; PostgreSQL's deadlock
detection is the net there, and a batch that loses is retried like any failed batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from dvm.accounts.rows import SessionRow, UserRow
from dvm.protocol.email_address import canonical_mailbox
from dvm.protocol.intake import Incoming
from dvm.protocol.methods import (
    ACCOUNT_KEY_METHODS,
    Activate,
    ChangeEmail,
    Register,
    RequestAccount,
    RequestLogin,
)
from dvm.store.database import dialect
from dvm.store.repository import HASHED, counter_key

_ADDRESSED = RequestAccount | Register | RequestLogin | ChangeEmail


def key(kind: str, value: str) -> str:
    """A lock's name; PostgreSQL locks ``hashtextextended(name, 0)``, so a collision only makes
    two unrelated decisions wait for each other."""
    return f"{kind}:{value}"


def named_keys(incoming: Incoming, salt: str) -> set[str]:
    """The locks a decoded request names itself (as the service loads its rows)."""
    request, event = incoming.request, incoming.event
    keys = {key("request", event.id), key("session", event.pubkey)}
    if request is None:
        return keys
    if incoming.seal_id is not None:
        keys.add(key("seal", incoming.seal_id))
    if isinstance(request, _ADDRESSED):
        keys.add(key("mailbox", counter_key(salt, canonical_mailbox(request.email))))
    if isinstance(request, Activate | Register):
        keys.add(key("pubkey", request.pubkey))
    if request.method in ACCOUNT_KEY_METHODS:
        keys.add(key("pubkey", incoming.signer or event.pubkey))
    return keys


def row_keys(session: SessionRow | None, account: UserRow | None) -> set[str]:
    """The locks a request's rows give: what :data:`_LOCK_BATCH` derives in the database."""
    keys = set()
    if session is not None:
        if session.user_id:
            keys.add(key("user", session.user_id))
        if session.subject:
            keys.add(key("mailbox", session.subject.removeprefix(HASHED)))
        if session.claim_pubkey:
            keys.add(key("pubkey", session.claim_pubkey))
    if account is not None:
        keys.add(key("user", account.id))
    return keys


_LOCK_KEYS = (
    "SELECT k, pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM (SELECT k FROM unnest(?::text[]) AS t(k) ORDER BY hashtextextended(k, 0)) AS keys"
)
"""Locks the named keys in their hashes' order (the sort runs before any lock is taken)."""
_LOCK_BATCH = f"""
WITH s AS (SELECT user_id, subject, claim_pubkey FROM sessions WHERE pubkey = ANY(?)),
named AS (
    SELECT unnest(?::text[]) AS k
    UNION SELECT 'user:' || user_id FROM s WHERE user_id IS NOT NULL
    UNION SELECT 'mailbox:' || substr(subject, {len(HASHED) + 1}) FROM s WHERE subject <> ''
    UNION SELECT 'pubkey:' || claim_pubkey FROM s WHERE claim_pubkey <> ''
    UNION SELECT 'user:' || id FROM users WHERE pubkey = ANY(?) AND pubkey <> ''
)
SELECT k, pg_advisory_xact_lock(hashtextextended(k, 0))
FROM (SELECT k FROM named ORDER BY hashtextextended(k, 0)) AS keys
"""  # noqa: S608 (a constant)
"""One statement: read the rows that give keys, then lock every key in its hash's order."""


class KeyLocks:
    """The keys one transaction holds; the ``cover_*`` methods take more as rows reveal them."""

    def __init__(self, conn: sqlite3.Connection, held: Iterable[str] = ()) -> None:
        self.conn = conn
        self.held = set(held)
        self.late = 0  # keys taken after the batch's statement (rows changed, or a code's mailbox)

    def take(self, keys: Iterable[str]) -> bool:
        """Lock ``keys`` not held yet, in one statement; True if there were any."""
        missing = sorted(set(keys) - self.held)
        if not missing:
            return False
        self.conn.execute(_LOCK_KEYS, (missing,)).fetchall()
        self.held.update(missing)
        self.late += 1
        return True

    def cover_rows(self, session: SessionRow | None, account: UserRow | None) -> bool:
        """Hold the keys a request's loaded session and account give; True when some were
        missing (the batch's statement read them before a change): load them again then."""
        return self.take(row_keys(session, account))

    def cover_mailbox(self, mailbox_key: str) -> None:
        """Hold the mailbox (its salted counter key) before its rows are read."""
        self.take((key("mailbox", mailbox_key),))


def lock_batch(conn: sqlite3.Connection, batch: Sequence[Incoming], salt: str) -> KeyLocks | None:
    """Lock every key of ``batch`` (PostgreSQL) in one statement; None on SQLite, whose
    transaction already holds its one write lock."""
    if dialect(conn) != "postgresql":
        return None
    named: set[str] = set()
    sessions: set[str] = set()
    accounts: set[str] = set()
    for incoming in batch:
        named |= named_keys(incoming, salt)
        sessions.add(incoming.event.pubkey)
        if incoming.request is not None and incoming.request.method in ACCOUNT_KEY_METHODS:
            accounts.add(incoming.signer or incoming.event.pubkey)
    rows = conn.execute(_LOCK_BATCH, (sorted(sessions), sorted(named), sorted(accounts))).fetchall()
    return KeyLocks(conn, (str(r[0]) for r in rows))

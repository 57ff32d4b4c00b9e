"""What a decision locks on a shared database: its mailboxes, accounts, keys and request id.

On SQLite one writer decides at a time and nothing here runs. On PostgreSQL, daemons decide at
once; what keeps the account rules (one user per email, one activated account per key, a code
works once, a seal is carried once, a request is decided once) is that two decisions that read or
write the same rows take the same transaction-scoped advisory lock first, and wait for each other:

- the **request** (its event id): two daemons given the same event decide it once; the second
  finds the stored reply;
- the **session** of the event's key: requests from one key run one at a time;
- every **mailbox** the request touches (canonical, by its salted counter key): the address it
  names, its session's mailbox, and the current and pending addresses of the accounts it acts
  on: a mailbox's codes, caps, wrong-code budget and owner are read and written under it (an
  email change holds both the old and the new address's);
- every **account** it may write (a user id): its session's and the one it acts for;
- every **key** it names or acts for (``register``, ``activate``, a session's claimed key, an
  account's signing key): one activated account per key;
- its **seal**, carried once.

The global code counters need no lock: each connection counts in rows of its own
(``code_send_minutes.shard``). Another account's pending change to a proven address is released
by a conditional update (:class:`~dvm.accounts.decision.ReleaseChange`), not by rewriting its row.

Some of these keys are known from the request alone; the others come from rows (a session's
mailbox, the account a key acts for). :func:`lock_batch` reads those rows for the whole batch
first (one statement), then takes every key of the batch in one sorted statement, so two
batches never lock in opposite orders. Rows can change between that read and the locks; the
store checks again once a request's rows are loaded under the locks (:meth:`KeyLocks.cover`)
and takes what is missing then (out of order: PostgreSQL's deadlock detection is the net there,
and a batch that loses is retried like any failed batch).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Names:
    """What a request names itself that its locks follow (the service loads rows by the same)."""

    session_key: str  # the event's key: its session
    email: str | None = None  # the address it is about
    pubkey: str | None = None  # the key it would activate
    account_key: str | None = None  # the key whose account it acts for
    seal_id: str | None = None


def names_of(incoming: Incoming) -> Names:
    """The names of a decoded request, as :meth:`dvm.service.AccountService` loads its rows."""
    request, event = incoming.request, incoming.event
    if request is None:
        return Names(event.pubkey)
    return Names(
        event.pubkey,
        request.email if isinstance(request, _ADDRESSED) else None,
        request.pubkey if isinstance(request, Activate | Register) else None,
        (incoming.signer or event.pubkey) if request.method in ACCOUNT_KEY_METHODS else None,
        incoming.seal_id,
    )


@dataclass(frozen=True, slots=True)
class Found:
    """What rows said about a request's other keys: accounts, mailboxes ('h:' keys or
    addresses) and claimed keys."""

    user_ids: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    pubkeys: tuple[str, ...] = ()


def lock_key(kind: str, value: str) -> int:
    """The advisory lock (a signed 64-bit key) of one thing: a collision only makes two
    unrelated decisions wait for each other."""
    digest = hashlib.blake2b(f"{kind}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def keys_for(names: Names, found: Found, mailbox_key: Callable[[str], str]) -> frozenset[int]:
    """Every lock a request with ``names`` and rows ``found`` needs (besides its request id's)."""
    keys = {lock_key("session", names.session_key)}
    if names.seal_id is not None:
        keys.add(lock_key("seal", names.seal_id))
    mailboxes = (names.email, *found.mailboxes) if names.email else found.mailboxes
    keys.update(lock_key("mailbox", mailbox_key(m)) for m in mailboxes if m)
    keys.update(lock_key("user", u) for u in found.user_ids if u)
    pubkeys = (names.pubkey, names.account_key, *found.pubkeys)
    keys.update(lock_key("pubkey", p) for p in pubkeys if p)
    return frozenset(keys)


_LOCK = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(?::bigint[]) AS t(k)"
"""Locks in the array's order (a function scan yields it; the aggregate takes each row in turn)."""


class KeyLocks:
    """The keys one transaction holds; :meth:`cover` takes more as rows reveal them."""

    def __init__(self, conn: sqlite3.Connection, mailbox_key: Callable[[str], str]) -> None:
        self.conn = conn
        self.mailbox_key = mailbox_key
        self.held: set[int] = set()
        self.late = 0  # keys the batch's first read did not foresee (rows changed meanwhile)

    def take(self, keys: Iterable[int]) -> bool:
        """Lock ``keys`` not held yet, in sorted order, in one statement; True if there were any."""
        missing = sorted(set(keys) - self.held)
        if not missing:
            return False
        self.conn.execute(_LOCK, (missing,))
        self.held.update(missing)
        return True

    def cover(
        self,
        session_key: str,
        email: str | None,
        pubkey: str | None,
        account_key: str | None,
        seal_id: str | None,
        rows: tuple[SessionRow | None, UserRow | None, UserRow | None],
    ) -> bool:
        """Hold every key of a request (its names, as :func:`names_of` gives them) whose rows
        were loaded (its session, the session's user, the account it acts for); True when some
        were missing: the rows must then be loaded again, under them."""
        names = Names(session_key, email, pubkey, account_key, seal_id)
        taken = self.take(keys_for(names, found_in(*rows), self.mailbox_key))
        if taken:
            self.late += 1
        return taken


def found_in(session: SessionRow | None, session_user: UserRow | None, account_user: UserRow | None) -> Found:
    """What a request's loaded rows say about its other keys."""
    users = [u for u in (session_user, account_user) if u is not None]
    return Found(
        tuple(u.id for u in users) + ((session.user_id or "",) if session is not None else ()),
        tuple(m for u in users for m in (u.email, u.pending_email)) + ((session.subject,) if session else ()),
        (session.claim_pubkey,) if session is not None else (),
    )


_FORESEE = """
SELECT 's', s.pubkey, s.user_id, s.subject, s.claim_pubkey, u.email, u.pending_email
FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.pubkey = ANY(?)
UNION ALL
SELECT 'a', u.pubkey, u.id, '', '', u.email, u.pending_email
FROM users u WHERE u.pubkey = ANY(?) AND u.pubkey <> ''
"""


def lock_batch(conn: sqlite3.Connection, batch: Sequence[Incoming], salt: str) -> KeyLocks | None:
    """Lock every key of ``batch`` (PostgreSQL) in one sorted statement; None on SQLite, whose
    transaction already holds its one write lock."""
    if dialect(conn) != "postgresql":
        return None
    locks = KeyLocks(conn, _MailboxKeys(salt))
    named = [(incoming, names_of(incoming)) for incoming in batch if incoming.request is not None]
    if not named:
        return locks
    sessions = sorted({n.session_key for _, n in named})
    accounts = sorted({n.account_key for _, n in named if n.account_key})
    rows = conn.execute(_FORESEE, (sessions, accounts)).fetchall()
    by_session = {r[1]: r for r in rows if r[0] == "s"}
    by_account = {r[1]: r for r in rows if r[0] == "a"}
    wanted = {lock_key("request", incoming.event.id) for incoming, _ in named}
    for _, names in named:
        found = _found(by_session.get(names.session_key), by_account.get(names.account_key or ""))
        wanted |= keys_for(names, found, locks.mailbox_key)
    locks.take(wanted)
    return locks


class _MailboxKeys:
    """The salted counter key of an address (or of a session's subject, stored hashed already),
    each worked out once a batch."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self.known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        key = self.known.get(text)
        if key is None:
            key = counter_key(self.salt, text if text.startswith(HASHED) else canonical_mailbox(text))
            self.known[text] = key
        return key


def _found(session: Sequence[str] | None, account: Sequence[str] | None) -> Found:
    user_ids: list[str] = []
    mailboxes: list[str] = []
    pubkeys: list[str] = []
    if session is not None:
        _, _, user_id, subject, claim, email, pending = session
        user_ids.append(user_id or "")
        mailboxes += [subject, email or "", pending or ""]
        pubkeys.append(claim)
    if account is not None:
        _, _, user_id, _, _, email, pending = account
        user_ids.append(user_id)
        mailboxes += [email, pending]
    return Found(tuple(user_ids), tuple(mailboxes), tuple(pubkeys))

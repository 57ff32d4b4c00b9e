"""The SQL of the account service: load a :class:`View`, apply a :class:`Decision`, record replies.

Plain synchronous functions on a ``sqlite3.Connection``; the caller owns the transaction (they run
inside :func:`dvm.store.database.immediate` or a savepoint, in one ``Database.run`` call).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dvm.accounts.code_rules import DECOY_HMAC
from dvm.accounts.decision import (
    DecoyWork,
    DeleteUser,
    Mail,
    PutCode,
    PutSession,
    PutUser,
    RecordCodeFailure,
    RecordCodeSend,
    RecordSeal,
    RefreshCode,
    ReleaseChange,
    Sends,
    SpendCode,
    View,
    Write,
)
from dvm.accounts.rows import CodeKind, CodeRow, Purpose, SessionRow, SessionState, UserRow
from dvm.nostr.event import Event, parse_event_json
from dvm.outbox import MailClaim, OutboxMail, PendingReply, ReplyMark
from dvm.protocol.email_address import canonical_mailbox, domain_of
from dvm.store.database import immediate
from dvm.store.sealed import ParamsSeal

if TYPE_CHECKING:  # keylocks imports this module (its mailbox keys are counter keys)
    from dvm.store.keylocks import KeyLocks
    from dvm.store.memo import Batch

_SELECT_USER = (
    "SELECT id, email, verified, activated, entropy, pubkey, bkp, created_at, updated_at, "
    "bkp_previous, pending_email, grace_deadline, notify_login, suspended_at, last_login_at, "
    "last_seen, auth_epoch, lang FROM users"
)
_SELECT_SESSION = (
    "SELECT pubkey, user_id, purpose, state, code_hmac, code_sent_at, code_expires_at, attempts, "
    "verified_at, created_at, updated_at, subject, decoy, auth_until, claim_pubkey, claim_backup, "
    "auth_epoch, address FROM sessions"
)
_PUT_USER = (
    "INSERT INTO users (id, email, verified, activated, entropy, pubkey, bkp, created_at, updated_at, "
    "bkp_previous, pending_email, grace_deadline, notify_login, suspended_at, last_login_at, last_seen, "
    "auth_epoch, lang) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET email = excluded.email, verified = excluded.verified, "
    "activated = excluded.activated, entropy = excluded.entropy, pubkey = excluded.pubkey, "
    "bkp = excluded.bkp, updated_at = excluded.updated_at, bkp_previous = excluded.bkp_previous, "
    "pending_email = excluded.pending_email, grace_deadline = excluded.grace_deadline, "
    "notify_login = excluded.notify_login, suspended_at = excluded.suspended_at, "
    "last_login_at = excluded.last_login_at, last_seen = excluded.last_seen, "
    "auth_epoch = excluded.auth_epoch, lang = excluded.lang"
)
_PUT_SESSION = (
    "INSERT INTO sessions (pubkey, user_id, purpose, state, code_hmac, code_sent_at, "
    "code_expires_at, attempts, verified_at, created_at, updated_at, subject, decoy, auth_until, "
    "claim_pubkey, claim_backup, auth_epoch, address) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (pubkey) DO UPDATE SET user_id = excluded.user_id, purpose = excluded.purpose, "
    "state = excluded.state, code_hmac = excluded.code_hmac, code_sent_at = excluded.code_sent_at, "
    "code_expires_at = excluded.code_expires_at, attempts = excluded.attempts, "
    "verified_at = excluded.verified_at, created_at = excluded.created_at, updated_at = excluded.updated_at, "
    "subject = excluded.subject, decoy = excluded.decoy, auth_until = excluded.auth_until, "
    "claim_pubkey = excluded.claim_pubkey, claim_backup = excluded.claim_backup, "
    "auth_epoch = excluded.auth_epoch, address = excluded.address"
)
CODES_LOADED = 20
"""At most this many codes are loaded of each kind for the request's address, and of the
mailbox's other addresses (a handful are ever live: joins keep the newest one so)."""


def _user(row: sqlite3.Row | None) -> UserRow | None:
    if row is None:
        return None
    return UserRow(
        id=row["id"],
        email=row["email"],
        verified=bool(row["verified"]),
        activated=bool(row["activated"]),
        entropy=row["entropy"],
        pubkey=row["pubkey"],
        backup=row["bkp"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        backup_previous=row["bkp_previous"],
        pending_email=row["pending_email"],
        grace_deadline=row["grace_deadline"],
        notify_login=bool(row["notify_login"]),
        suspended_at=row["suspended_at"],
        last_login_at=row["last_login_at"],
        last_seen=row["last_seen"],
        auth_epoch=row["auth_epoch"],
        lang=row["lang"],
    )


def _session(row: sqlite3.Row | None) -> SessionRow | None:
    if row is None:
        return None
    return SessionRow(
        pubkey=row["pubkey"],
        user_id=row["user_id"],
        purpose=Purpose(row["purpose"]),
        state=SessionState(row["state"]),
        code_hmac=row["code_hmac"],
        code_sent_at=row["code_sent_at"],
        code_expires_at=row["code_expires_at"],
        attempts=row["attempts"],
        verified_at=row["verified_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        subject=row["subject"],
        decoy=bool(row["decoy"]),
        auth_until=row["auth_until"],
        claim_pubkey=row["claim_pubkey"],
        claim_backup=row["claim_backup"],
        auth_epoch=row["auth_epoch"],
        address=row["address"],
    )


def user_by_id(conn: sqlite3.Connection, user_id: str) -> UserRow | None:
    return _user(conn.execute(_SELECT_USER + " WHERE id = ?", (user_id,)).fetchone())


def user_by_email(conn: sqlite3.Connection, email: str) -> UserRow | None:
    return _user(conn.execute(_SELECT_USER + " WHERE email = ?", (email,)).fetchone())


def user_by_pending_email(conn: sqlite3.Connection, email: str) -> UserRow | None:
    """The user who most recently reserved ``email`` as a pending change (lapsed or not).

    ``pending_email <> ''`` lets SQLite use the partial index: without it every signup scanned
    the whole users table, since the planner cannot prove a bound parameter is not ''."""
    where = " WHERE pending_email = ? AND pending_email <> '' ORDER BY grace_deadline DESC NULLS LAST LIMIT 1"
    sql = _SELECT_USER + where
    return _user(conn.execute(sql, (email,)).fetchone())


def user_by_pubkey(conn: sqlite3.Connection, pubkey: str) -> UserRow | None:
    return _user(conn.execute(_SELECT_USER + " WHERE pubkey = ? AND pubkey <> ''", (pubkey,)).fetchone())


def session_by_pubkey(conn: sqlite3.Connection, pubkey: str) -> SessionRow | None:
    return _session(conn.execute(_SELECT_SESSION + " WHERE pubkey = ?", (pubkey,)).fetchone())


def users_by_pending_email(conn: sqlite3.Connection, email: str) -> tuple[UserRow, ...]:
    """Every account with ``email`` as a pending change (none reserves it; the owner wins)."""
    sql = _SELECT_USER + " WHERE pending_email = ? AND pending_email <> '' LIMIT 100"
    return tuple(u for row in conn.execute(sql, (email,)) if (u := _user(row)) is not None)


def code_sends_since(
    conn: sqlite3.Connection, mailbox_key: str, since: int, address_key: str = "", *, counted: int = 1 << 16
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """When codes were minted for the mailbox within the window, and for one address of it: at
    most ``counted`` of each (the most a price ever counts), so a request's work never grows
    with a mailbox's history."""
    sends = conn.execute(
        "SELECT sent_at FROM code_sends WHERE mailbox = ? AND sent_at > ? LIMIT ?",
        (mailbox_key, since, counted),
    ).fetchall()
    if not address_key:
        return tuple(r[0] for r in sends), ()
    own = conn.execute(
        "SELECT sent_at FROM code_sends WHERE mailbox = ? AND address = ? AND sent_at > ? LIMIT ?",
        (mailbox_key, address_key, since, counted),
    ).fetchall()
    return tuple(r[0] for r in sends), tuple(r[0] for r in own)


def minute_sends(conn: sqlite3.Connection, scope: str, since: int) -> Sends:
    """Codes sent to ``scope`` (a domain's key, or ``*``) in the minutes after ``since``: how
    many, and when the oldest minute counted began. Counted by the minute: at most 60 rows."""
    row = conn.execute(
        "SELECT coalesce(sum(sends), 0), min(minute) FROM code_send_minutes WHERE scope = ? AND minute > ?",
        (scope, since // 60),
    ).fetchone()
    return Sends(int(row[0]), None if row[1] is None else int(row[1]) * 60)


def count_minute_sends(conn: sqlite3.Connection, scopes: Sequence[str], minute: int) -> None:
    """One more code in ``minute`` for each of ``scopes`` (distinct), in one statement, on the
    connection's own shard row (PostgreSQL: several daemons never wait on one another's)."""
    if not scopes:
        return
    shard = getattr(conn, "shard", 0)
    values = ", ".join("(?, ?, ?, 1)" for _ in scopes)
    conn.execute(
        f"INSERT INTO code_send_minutes (scope, minute, shard, sends) VALUES {values} "  # noqa: S608
        "ON CONFLICT (scope, minute, shard) DO UPDATE SET sends = code_send_minutes.sends + 1",
        [value for scope in scopes for value in (scope, minute, shard)],
    )


ALL_SCOPE = "*"


def code_failures_since(
    conn: sqlite3.Connection, subject: str, since: int, *, counted: int = 1 << 16
) -> tuple[int, ...]:
    """When wrong codes were tried on the mailbox's codes within the window: at most
    ``counted`` (the most the guessing rules ever count)."""
    rows = conn.execute(
        "SELECT at FROM code_failures WHERE subject = ? AND at > ? LIMIT ?", (subject, since, counted)
    )
    return tuple(row[0] for row in rows)


CodeTo = Literal["email", "account", "session"]
"""Where the code a request may send goes: the request's address, the account's, the session's."""


def load_view(
    conn: sqlite3.Connection,
    event_pubkey: str,
    email: str | None,
    account_pubkey: str | None,
    now: int,
    window_s: int,
    *,
    account_key: bool = True,
    signer: str | None = None,
    code_to: CodeTo | None = None,
    rivals: bool = False,
    failures: bool = False,
    failure_window_s: int = 7 * 24 * 3600,
    code_ttl_s: int = 900,
    seal_id: str | None = None,
    batch: Batch | None = None,
    locks: KeyLocks | None = None,
    counted: tuple[int, int] = (1 << 16, 1 << 16),
) -> View:
    """The rows one request may need: see :class:`~dvm.accounts.decision.View`.

    ``email`` is the request's address; for a confirmation (no address in the request) the
    account's pending address is looked up instead, to see whether someone took it meanwhile.
    The flags skip lookups a method cannot use: ``account_key`` (the request acts for an account:
    find it by its key or a session that proved it), ``code_to`` (the method may mail a code: load
    the codes, caps and wrong codes of the mailbox it would go to), ``failures`` (the method
    checks a code: load the session's mailbox's codes and wrong codes), ``rivals`` (other
    accounts' pending changes to the address). ``signer`` is the account key that signed the
    request's seal, ``seal_id`` that seal's id (a seal is used once). ``counted``: the most
    sends and wrong codes the rules ever count (:func:`dvm.accounts.code_rules.counted`).
    ``batch`` (its transaction's :class:`~dvm.store.memo.Batch`) computes each salted key and
    canonical mailbox once and reads the block list and the minute counters from memory where it
    may; without one, every read goes to the database.

    With ``locks`` (a shared PostgreSQL database), the keys the session and account rows give
    are held before anything else is read (the rows are read again if one was not held yet), and
    a mailbox before its rows are read (``dvm.store.keylocks``): no other decision changes them.
    """
    while True:
        session = session_by_pubkey(conn, event_pubkey)
        session_user = user_by_id(conn, session.user_id) if session and session.user_id else None
        account_user: UserRow | None = None
        via: Literal["key", "session"] | None = None
        if account_key:  # the key signing the event or its seal; else a session that proved the address
            account_user = user_by_pubkey(conn, signer or event_pubkey)
            via = "key" if account_user is not None else None
            if (
                account_user is None
                and signer is None
                and session is not None
                and session.authorises(now, session_user)
            ):
                account_user, via = session_user, "session"
        if locks is None or not locks.cover_rows(session, account_user):
            break
    batch = batch or _plain_batch(conn)
    key_of = batch.key
    address = email
    if address is None and account_user is not None and account_user.pending_email:
        address = account_user.pending_email
        if locks is not None:  # a confirmation: the pending address's owner and codes
            locks.cover_mailbox(key_of(canonical_mailbox(address)))
    email_user = user_by_email(conn, address) if address else None
    claimed = account_pubkey or (session.claim_pubkey if session is not None and failures else "")
    pubkey_user = user_by_pubkey(conn, claimed) if claimed else None
    pending_users: tuple[UserRow, ...] = ()
    if rivals:
        owned = address or (session_user.email if session_user else None)
        pending_users = users_by_pending_email(conn, owned) if owned else ()
    rows: dict[str, Any] = {}  # the View's code fields, built once at the end
    if session is not None and session_user is not None and session.address:
        rows["session_address"] = _resolve(key_of, session.address, session_user)
    to = email if code_to == "email" else None
    if code_to == "account" and account_user is not None:
        to = account_user.email
    mailbox_key = None
    address_key = ""
    if to is not None:  # a method that may mail a code to this address
        box = batch.mailbox(to)
        mailbox_key = key_of(box)
        if locks is not None:
            locks.cover_mailbox(mailbox_key)
        since = now - window_s
        address_key = key_of(to)
        sends, to_address = code_sends_since(conn, mailbox_key, since, address_key, counted=counted[0])
        rows.update(
            address_is_mailbox=box == to,
            code_sends=sends,
            address_sends=to_address,
            domain_sends=batch.sends(key_of(domain_of(box)), since),
            all_sends=batch.sends(ALL_SCOPE, since),
        )
    elif (failures or code_to == "session") and session is not None and session.subject:
        mailbox_key = key_of(session.subject)  # the session's own address and mailbox
        address_key = key_of(session.address) if session.address else ""
        rows["address_is_mailbox"] = address_key == mailbox_key and bool(address_key)
        if code_to == "session":  # a resend: the mailbox's and the address's caps count
            sends, to_address = code_sends_since(
                conn, mailbox_key, now - window_s, address_key, counted=counted[0]
            )
            rows.update(code_sends=sends, address_sends=to_address)
    if mailbox_key is not None:
        rows["codes"] = codes_of(conn, mailbox_key, address_key, now - window_s - code_ttl_s, now)
        rows["failures"] = code_failures_since(conn, mailbox_key, now - failure_window_s, counted=counted[1])
    return View(
        session=session,
        session_user=session_user,
        email_user=email_user,
        pubkey_user=pubkey_user,
        account_user=account_user,
        pending_users=pending_users,
        account_via=via,
        address_key=address_key,
        email_blocked=batch.blocked(address) if address else False,
        seal_used=seal_id is not None and seal_seen(conn, seal_id),
        **rows,
    )


def _plain_batch(conn: sqlite3.Connection) -> Batch:
    """A caller outside the daemon's batches (the admin CLI): a :class:`~dvm.store.memo.Batch`
    that remembers nothing, so every read goes to the database."""
    from dvm.store.memo import Batch  # noqa: PLC0415 (memo builds on this module)

    return Batch(conn, erasure_salt(conn))


def _resolve(key_of: Callable[[str], str], key: str, user: UserRow) -> str:
    """The session's address in full, if its key is the user's address or pending change's."""
    for address in (user.email, user.pending_email):
        if address and key_of(address) == key_of(key):
            return address
    return ""


def codes_of(
    conn: sqlite3.Connection, mailbox_key: str, address_key: str, since: int, now: int
) -> tuple[CodeRow, ...]:
    """The codes one request compares: the exact address's newest of each kind (minted after
    ``since``, or still live at ``now``: a join keeps a code alive), and the mailbox's newest
    live real codes at its other addresses (a slip, typed from another mail). Each part is
    bounded on its own, so no flood of other addresses ever pushes the address's codes out."""
    rows = conn.execute(
        _CODES_OF,
        (
            mailbox_key,
            address_key,
            since,
            now,
            CODES_LOADED,
            mailbox_key,
            address_key,
            DECOY_HMAC,
            now,
            CODES_LOADED,
        ),
    )
    return tuple(
        CodeRow(int(r[0]), CodeKind(r[1]), r[2], int(r[3]), int(r[4]), bool(r[5]), r[6], bool(r[7]))
        for r in rows
    )


_CODE_COLUMNS = "id, kind, code_hmac, minted_at, expires_at, long, address, used"
_CODES_OF = (
    f"SELECT {_CODE_COLUMNS} FROM (SELECT {_CODE_COLUMNS}, ROW_NUMBER() OVER "  # noqa: S608 (constants)
    "(PARTITION BY kind ORDER BY minted_at DESC, id DESC) AS n FROM codes "
    "WHERE mailbox = ? AND address = ? AND (minted_at > ? OR expires_at > ?)) AS own WHERE n <= ? "
    f"UNION ALL SELECT {_CODE_COLUMNS} FROM (SELECT {_CODE_COLUMNS} FROM codes "
    "WHERE mailbox = ? AND address <> ? AND code_hmac <> ? AND expires_at > ? "
    "ORDER BY minted_at DESC, id DESC LIMIT ?) AS others"
)


def seal_seen(conn: sqlite3.Connection, seal_id: str) -> bool:
    return conn.execute("SELECT 1 FROM seals WHERE id = ?", (seal_id,)).fetchone() is not None


def block_keys(email: str, mailbox: str | None = None) -> tuple[str, ...]:
    """What a block may name for a normalised address: the address, its domain and every parent
    domain (a blocked ``example.org`` covers ``mail.example.org``). ``mailbox``: its canonical
    mailbox, when known already."""
    mailbox = mailbox or canonical_mailbox(email)
    labels = email.rpartition("@")[2].split(".")
    domains = (".".join(labels[i:]) for i in range(len(labels)))
    return tuple(dict.fromkeys((email, mailbox, *domains, mailbox.rpartition("@")[2])))


def is_blocked(conn: sqlite3.Connection, email: str) -> bool:
    """True when the address or one of its domains is on the block list (``sigit-dvm blocks``)."""
    return any_blocked(conn, block_keys(email))


def any_blocked(conn: sqlite3.Connection, keys: Sequence[str]) -> bool:
    """True when one of ``keys`` (:func:`block_keys`) is on the block list."""
    marks = ", ".join("?" * len(keys))
    return conn.execute(f"SELECT 1 FROM blocks WHERE value IN ({marks}) LIMIT 1", keys).fetchone() is not None  # noqa: S608


def apply_writes(conn: sqlite3.Connection, writes: Sequence[Write], batch: Batch | None = None) -> None:
    """Write a decision's rows; ``batch`` (:class:`~dvm.store.memo.Batch`) hashes each counter
    key once and keeps the minute counters it remembers current."""
    batch = batch or _plain_batch(conn)
    key_of = batch.key
    for write in writes:
        if isinstance(write, PutUser):
            u = write.row
            conn.execute(
                _PUT_USER,
                (
                    u.id,
                    u.email,
                    u.verified,
                    u.activated,
                    u.entropy,
                    u.pubkey,
                    u.backup,
                    u.created_at,
                    u.updated_at,
                    u.backup_previous,
                    u.pending_email,
                    u.grace_deadline,
                    u.notify_login,
                    u.suspended_at,
                    u.last_login_at,
                    u.last_seen,
                    u.auth_epoch,
                    u.lang,
                ),
            )
        elif isinstance(write, PutSession):
            s = write.row
            conn.execute(
                _PUT_SESSION,
                (
                    s.pubkey,
                    s.user_id,
                    s.purpose.value,
                    s.state.value,
                    s.code_hmac,
                    s.code_sent_at,
                    s.code_expires_at,
                    s.attempts,
                    s.verified_at,
                    s.created_at,
                    s.updated_at,
                    HASHED + key_of(s.subject) if s.subject else "",
                    s.decoy,
                    s.auth_until,
                    s.claim_pubkey,
                    s.claim_backup,
                    s.auth_epoch,
                    HASHED + key_of(s.address) if s.address else "",
                ),
            )
        elif isinstance(write, RecordCodeSend):
            conn.execute(
                "INSERT INTO code_sends (mailbox, address, sent_at) VALUES (?, ?, ?)",
                (key_of(write.mailbox), key_of(write.address) if write.address else "", write.at),
            )
            if write.unproven:  # only codes to unproven addresses count toward the shares
                batch.count_sends((key_of(domain_of(write.mailbox)), ALL_SCOPE), write.at // 60)
        elif isinstance(write, PutCode):
            c = write.row
            conn.execute(
                "INSERT INTO codes (mailbox, address, kind, code_hmac, long, minted_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_of(write.mailbox),
                    key_of(write.address),
                    c.kind.value,
                    c.code_hmac,
                    c.long,
                    c.minted_at,
                    c.expires_at,
                ),
            )
        elif isinstance(write, RefreshCode):
            conn.execute(
                "UPDATE codes SET expires_at = ? WHERE id = ? AND expires_at < ?",
                (write.expires_at, write.code_id, write.expires_at),
            )
        elif isinstance(write, SpendCode):
            conn.execute("UPDATE codes SET used = 1 WHERE id = ?", (write.code_id,))
        elif isinstance(write, RecordSeal):
            conn.execute(
                "INSERT INTO seals (id, until) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (write.seal_id, write.until),
            )
        elif isinstance(write, RecordCodeFailure):
            key = key_of(write.subject)
            conn.execute("INSERT INTO code_failures (subject, at) VALUES (?, ?)", (key, write.at))
        elif isinstance(write, ReleaseChange):
            conn.execute(
                "UPDATE users SET pending_email = '', grace_deadline = NULL, updated_at = ? "
                "WHERE id = ? AND pending_email = ?",
                (write.at, write.user_id, write.pending_email),
            )
        elif isinstance(write, DeleteUser):
            erase_user(conn, write.user_id, write.at, write.by)
        # DecoyWork needs the mail seal: the service does it (decoy_work).


def decoy_work(
    conn: sqlite3.Connection, work: DecoyWork, message_id: str, now: int, *, seal: ParamsSeal
) -> None:
    """A decoy's mail: written as a real one would be, and withdrawn (see :class:`DecoyWork`)."""
    mail = Mail(work.kind, work.mailbox, None, work.params)
    row = queue_mail(conn, mail, message_id, None, now, MailClaim("decoy", 0), seal=seal)
    assert row is not None
    conn.execute("DELETE FROM mail WHERE id = ?", (row.id,))


def erase_user(
    conn: sqlite3.Connection, user_id: str, at: int | None = None, by: str = "", *, record: bool = True
) -> None:
    """Delete a user (GDPR erasure): sessions and code records cascade; its mail rows go, and the
    sent notices of an earlier erasure of the same address; its addresses (current, pending, and
    earlier ones its mail and audit rows name) are replaced in the audit log by a salted hash,
    which :func:`erased_address` can still match. On a ``secure_delete`` connection
    (:func:`~dvm.store.database.connect`), nothing of them stays in the file once the WAL is
    checkpointed. ``record=False`` (retention dropping a signup never verified: no account, no
    one's erasure) writes no ``erased_addresses`` row."""
    user = user_by_id(conn, user_id)
    if user is None:
        return
    addresses = {user.email, user.pending_email}
    for (recipient,) in conn.execute("SELECT recipient FROM mail WHERE user_id = ?", (user_id,)):
        addresses.add(recipient)  # the values (a new address among them) are sealed: never in clear
    audit_rows = conn.execute("SELECT id, target, detail FROM audit WHERE user_id = ?", (user_id,)).fetchall()
    for row in audit_rows:
        for text in (row["target"], row["detail"]):
            addresses.update(word for word in text.split() if "@" in word)
    addresses.discard("")
    salt = erasure_salt(conn)
    tokens = {a: "erased:" + address_hash(salt, a)[:16] for a in addresses}
    for row in audit_rows:
        target, detail = row["target"], row["detail"]
        for address in sorted(addresses, key=len, reverse=True):
            target = target.replace(address, tokens[address])
            detail = detail.replace(address, tokens[address])
        conn.execute("UPDATE audit SET target = ?, detail = ? WHERE id = ?", (target, detail, row["id"]))
    if at is None:  # the owner's own deletion: the pure core passed no time, the store's clock will do
        at = int(time.time())
    conn.executemany(
        "INSERT INTO erased_addresses (address_hash, erased_at, erased_by) VALUES (?, ?, ?) "
        "ON CONFLICT (address_hash) DO UPDATE SET erased_at = excluded.erased_at, "
        "erased_by = excluded.erased_by",
        [(address_hash(salt, a), at, by or "the account owner") for a in sorted(addresses) if record],
    )
    conn.execute("DELETE FROM mail WHERE user_id = ?", (user_id,))
    conn.executemany(  # notices of an earlier erasure of the same address, once sent or dead
        "DELETE FROM mail WHERE recipient = ? AND user_id IS NULL AND status <> 'queued'",
        [(a,) for a in sorted(addresses)],
    )
    conn.execute("DELETE FROM users WHERE id = ?", (user_id,))


def address_hash(salt: str, address: str) -> str:
    """HMAC-SHA256 of a normalised address under the database's erasure salt (hex)."""
    return hmac.digest(bytes.fromhex(salt), address.encode(), hashlib.sha256).hex()


def counter_key(salt: str, text: str) -> str:
    """What the code counters (and sessions' subjects) store for a mailbox, a domain or an
    account: its salted hash, so they name nobody (and outlive an erasure harmlessly) yet still
    count per mailbox. A value already hashed (``h:`` + key, as a session's subject is loaded)
    passes through."""
    if text.startswith(HASHED):
        return text[len(HASHED) :]
    return address_hash(salt, text)[:32]


HASHED = "h:"


def mailbox_counter_key(conn: sqlite3.Connection, email: str) -> str:
    """The key the code counters hold for the mailbox ``email`` reaches."""
    return counter_key(erasure_salt(conn), canonical_mailbox(email))


def erasure_salt(conn: sqlite3.Connection) -> str:
    """The database's random salt for erased addresses and the code counters (set at creation)."""
    return str(conn.execute("SELECT value FROM meta WHERE name = 'erasure_salt'").fetchone()[0])


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erased address: when, and by whom (an admin, or the account's owner)."""

    erased_at: int
    erased_by: str


def erased_address(conn: sqlite3.Connection, email: str) -> Erasure | None:
    """Whether a user with this normalised address was erased, without storing the address."""
    row = conn.execute(
        "SELECT erased_at, erased_by FROM erased_addresses WHERE address_hash = ?",
        (address_hash(erasure_salt(conn), email),),
    ).fetchone()
    return None if row is None else Erasure(row[0], row[1])


def queue_mail(
    conn: sqlite3.Connection,
    mail: Mail,
    message_id: str,
    request_id: str | None,
    now: int,
    claim: MailClaim | None = None,
    *,
    seal: ParamsSeal,
) -> OutboxMail | None:
    """Queue a mail, its params sealed (never a code in clear). With ``claim``, the row is born
    claimed by that worker run (attempt 1, under its lease) and returned for the run to send at
    once: no claiming transaction needed."""
    params = seal.seal(mail.params_dict(), message_id)
    claimer, attempts, due = (None, 0, now) if claim is None else (claim.claimer, 1, now + claim.lease_s)
    row = conn.execute(
        "INSERT INTO mail (message_id, user_id, request_id, kind, recipient, params, status, attempts, "
        "next_attempt_at, created_at, claimed_by, lang) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) "
        "RETURNING id",
        (
            message_id,
            mail.user_id,
            request_id,
            mail.kind.value,
            mail.to,
            params,
            attempts,
            due,
            now,
            claimer,
            mail.lang,
        ),
    ).fetchone()
    if claim is None:
        return None
    return OutboxMail(int(row[0]), message_id, mail.kind, mail.to, params, attempts, now, mail.lang)


@dataclass(frozen=True, slots=True)
class StoredReply:
    """A request already answered: its outcome and the reply event to (re)publish."""

    event_id: str
    outcome: str
    reply: Event
    published: bool


def stored_reply(conn: sqlite3.Connection, event_id: str) -> StoredReply | None:
    row = conn.execute(
        "SELECT event_id, outcome, reply_event, published_at FROM requests WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredReply(row[0], row[1], parse_event_json(row[2]), row[3] is not None)


def stored_replies(conn: sqlite3.Connection, event_ids: Sequence[str]) -> dict[str, StoredReply]:
    """The stored replies among ``event_ids`` (requests decided already), by request id."""
    found: dict[str, StoredReply] = {}
    for event_id in dict.fromkeys(event_ids):
        stored = stored_reply(conn, event_id)
        if stored is not None:
            found[event_id] = stored
    return found


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A decided request: the event, what it asked, how it ended and the signed reply."""

    event: Event
    method: str
    outcome: str
    reply: Event


def record_request(
    conn: sqlite3.Connection, record: RequestRecord, now: int, publish_grace_s: int = 0
) -> None:
    """Record a decided request and its reply; the retry loop picks the reply up after the grace
    period unless the immediate publication marks it published first."""
    event, reply = record.event, record.reply
    conn.execute(
        "INSERT INTO requests (event_id, pubkey, method, outcome, created_at, processed_at, reply_id, "
        "reply_event, next_publish_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.pubkey,
            record.method,
            record.outcome,
            event.created_at,
            now,
            reply.id,
            reply.to_json(),
            now + publish_grace_s,
        ),
    )


# --- the reply outbox (the requests table) ----------------------------------------------------

Bookkeeping = tuple[ReplyMark, ...]
"""Facts learnt after a commit that ride along in the next one (see ``store.writebehind``)."""


def write_bookkeeping(conn: sqlite3.Connection, marks: Bookkeeping) -> None:
    """Mark replies published, or schedule their next attempt, in the caller's transaction."""
    conn.executemany(
        "UPDATE requests SET published_at = ?, publish_attempts = publish_attempts + 1 "
        "WHERE event_id = ? AND published_at IS NULL",
        [(m.at, m.event_id) for m in marks if m.published],
    )
    conn.executemany(
        "UPDATE requests SET publish_attempts = publish_attempts + 1, next_publish_at = ? "
        "WHERE event_id = ? AND published_at IS NULL",
        [(m.at, m.event_id) for m in marks if not m.published],
    )


def due_replies(conn: sqlite3.Connection, now: int, limit: int) -> list[PendingReply]:
    rows = conn.execute(
        "SELECT event_id, reply_event, publish_attempts FROM requests "
        "WHERE published_at IS NULL AND next_publish_at <= ? ORDER BY next_publish_at LIMIT ?",
        (now, limit),
    ).fetchall()
    return [PendingReply(row[0], parse_event_json(row[1]), row[2]) for row in rows]


def replies_due_now(conn: sqlite3.Connection, now: int) -> int:
    """At start: replies a previous run committed but never saw published are due at once."""
    with immediate(conn):
        return int(
            conn.execute(
                "UPDATE requests SET next_publish_at = ? WHERE published_at IS NULL AND next_publish_at > ?",
                (now, now),
            ).rowcount
        )


def last_processed_at(conn: sqlite3.Connection) -> int | None:
    """When the last request was answered, by the daemon's clock."""
    row = conn.execute("SELECT max(processed_at) FROM requests").fetchone()
    return None if row[0] is None else int(row[0])

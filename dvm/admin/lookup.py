"""What admins type, resolved: a user by address, id or pubkey, a session by its key, where any
unique prefix of at least :data:`MIN_PREFIX` characters stands for a whole id or key (tables
show 16). An ambiguous prefix is refused with the candidates listed.
"""

from __future__ import annotations

import sqlite3

from dvm.accounts.rows import UserRow
from dvm.errors import AdminError, InvalidEmail, InvalidValue
from dvm.protocol.email_address import normalise_email
from dvm.store import repository

MIN_PREFIX = 8
MAX_CANDIDATES = 10
_HEX = frozenset("0123456789abcdef")


class AmbiguousPrefix(AdminError):
    """A prefix that matches more than one id or key."""


def user(conn: sqlite3.Connection, ref: str) -> UserRow:
    """The user an admin means by ``ref``: an address (any case), or an id or account pubkey, whole
    or a unique prefix of at least 8 hex characters."""
    ref = ref.strip()
    if "@" in ref:
        try:
            email = normalise_email(ref)
        except InvalidEmail as exc:
            raise InvalidValue(f"{ref!r} is not a valid address: {exc.message}") from exc
        found = repository.user_by_email(conn, email)
        if found is None:
            raise AdminError(f"no user with the address {email}")
        return found
    key = ref.lower()
    exact = repository.user_by_id(conn, key) or repository.user_by_pubkey(conn, key)
    if exact is not None:
        return exact
    _check_prefix(ref, "user")
    rows = conn.execute(
        "SELECT id, email FROM users WHERE id >= ? AND id < ? "
        "UNION SELECT id, email FROM users WHERE pubkey >= ? AND pubkey < ? AND pubkey <> '' "
        "ORDER BY id LIMIT ?",
        (key, key + "g", key, key + "g", MAX_CANDIDATES + 1),
    ).fetchall()
    ids = [row[0] for row in rows]
    _one(ref, "user", [f"{row[0]} ({row[1]})" for row in rows])
    found = repository.user_by_id(conn, ids[0])
    assert found is not None
    return found


def session(conn: sqlite3.Connection, ref: str) -> str:
    """The whole pubkey of the session an admin means by ``ref`` (whole or a unique prefix)."""
    key = ref.strip().lower()
    if repository.session_by_pubkey(conn, key) is not None:
        return key
    _check_prefix(ref, "session")
    rows = conn.execute(
        "SELECT pubkey FROM sessions WHERE pubkey >= ? AND pubkey < ? ORDER BY pubkey LIMIT ?",
        (key, key + "g", MAX_CANDIDATES + 1),
    ).fetchall()
    keys = [row[0] for row in rows]
    _one(ref, "session", keys)
    return str(keys[0])


def _check_prefix(ref: str, what: str) -> None:
    key = ref.strip().lower()
    if len(key) < MIN_PREFIX or not set(key) <= _HEX:
        hint = f" (a prefix needs at least {MIN_PREFIX} hex characters)" if set(key) <= _HEX else ""
        raise AdminError(f"no {what} {ref!r}{hint}")


def _one(ref: str, what: str, candidates: list[str]) -> None:
    if not candidates:
        raise AdminError(f"no {what} {ref!r}")
    if len(candidates) > 1:
        shown = ", ".join(candidates[:MAX_CANDIDATES])
        more = " and more" if len(candidates) > MAX_CANDIDATES else ""
        raise AmbiguousPrefix(f"{ref!r} matches several {what}s: {shown}{more}; give more characters")

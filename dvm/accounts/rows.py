"""The rows the state machine reads and writes, as frozen dataclasses (the store maps them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Purpose(enum.StrEnum):
    """Why a session exists: signup, login from a new device, or an account-key operation."""

    SIGNUP = "signup"
    LOGIN = "login"
    EMAIL_CHANGE = "email_change"  # a code to the new address, from the account key
    DELETION = "deletion"  # a fresh code before the account is erased
    REGISTER = "register"  # SIGit's one-event signup: the code activates the account


class SessionState(enum.StrEnum):
    """Lifecycle of a session; see the transition table in :mod:`dvm.accounts.machine`."""

    PENDING = "pending"  # a code was emailed and not yet matched
    VERIFIED = "verified"  # signup code matched; waiting for activation
    CONSUMED = "consumed"  # finished (activated, or login answered); never usable again
    LOCKED = "locked"  # too many wrong codes


@dataclass(frozen=True, slots=True)
class UserRow:
    """An account. ``email`` is normalised; ``pubkey``/``backup``/``entropy`` are ``""`` until set.

    ``pending_email`` is an email change awaiting its code (it reserves nothing; it lapses at
    ``grace_deadline``); ``backup_previous`` keeps the backup replaced by the last ``update_backup``.
    ``suspended_at`` is set by an admin (every request of the account is refused while set);
    ``last_login_at`` is when a login code last matched; ``last_seen`` (SIGit's column) is
    when the account was activated or a login code last matched: set exactly when activated.
    """

    id: str
    email: str
    verified: bool
    activated: bool
    entropy: str
    pubkey: str
    backup: str
    created_at: int
    updated_at: int
    backup_previous: str = ""
    pending_email: str = ""
    grace_deadline: int | None = None
    notify_login: bool = True
    suspended_at: int | None = None
    last_login_at: int | None = None
    last_seen: int | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """An ephemeral browser key's session with one user. ``code_hmac`` is ``""`` once used, and
    for a decoy: in private mode, a session with no user (``user_id`` None) whose code was never
    sent, so a stranger sees the same answers whether an address has an account or not.
    ``subject`` is where wrong codes count: the canonical mailbox the code went to (or would have)
    for signup and login, ``account:<id>`` for email change and deletion (the store keeps only its
    salted hash). ``decoy`` sessions never had a code sent (private mode). ``auth_until``: until
    then the key may call the account methods for its user, without the account key (set when a
    login or signup code matched, or at activation; a session the key opens for the same account
    meanwhile keeps it)."""

    pubkey: str
    user_id: str | None
    purpose: Purpose
    state: SessionState
    code_hmac: str
    code_sent_at: int
    code_expires_at: int
    attempts: int
    verified_at: int | None
    created_at: int
    updated_at: int
    subject: str = ""
    decoy: bool = False
    auth_until: int | None = None

    def authorises(self, now: int) -> bool:
        """True while this key may act for the session's account (not once locked)."""
        return (
            self.user_id is not None
            and self.auth_until is not None
            and now < self.auth_until
            and self.state is not SessionState.LOCKED
        )

"""The rows the state machine reads and writes, as frozen dataclasses (the store maps them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Purpose(enum.StrEnum):
    """Why a session exists: signup, login from a new device, or an account-key operation."""

    SIGNUP = "signup"
    LOGIN = "login"
    EMAIL_CHANGE = "email_change"  # a code to the new address, from the account
    DELETION = "deletion"  # a fresh code before the account is erased
    REGISTER = "register"  # SIGit's one-event signup: the code activates the account

    @property
    def code_kind(self) -> CodeKind:
        """Which of a mailbox's codes serve this session (signup and register share theirs)."""
        return CodeKind.SIGNUP if self is Purpose.REGISTER else CodeKind(self.value)


class CodeKind(enum.StrEnum):
    """The codes of one mailbox are kept apart by what they prove the mailbox for."""

    SIGNUP = "signup"
    LOGIN = "login"
    EMAIL_CHANGE = "email_change"
    DELETION = "deletion"


class SessionState(enum.StrEnum):
    """Lifecycle of a session; see the transition table in :mod:`dvm.accounts.machine`."""

    PENDING = "pending"  # a code was emailed and not yet matched
    VERIFIED = "verified"  # signup code matched; waiting for activation
    CONSUMED = "consumed"  # finished (activated, or login answered); never usable again
    LOCKED = "locked"  # too many wrong codes


@dataclass(frozen=True, slots=True)
class UserRow:
    """An account. ``email`` is normalised; ``pubkey``/``backup``/``entropy`` are ``""`` until set.

    A key is stored only at activation, so an unfinished signup holds none and blocks nobody's
    key. ``pending_email`` is an email change awaiting its code (it reserves nothing; it lapses at
    ``grace_deadline``); ``backup_previous`` keeps the backup replaced by the last
    ``update_backup``. ``suspended_at`` is set by an admin (every request of the account is
    refused while set); ``last_login_at`` is when a login code last matched; ``last_seen``
    (SIGit's column) is when the account was activated or a login code last matched: set exactly
    when activated. ``auth_epoch`` moves when the account revokes its sessions: a session acts for
    the account only while it carries the current epoch. ``lang``: the language of the last
    request that named it (BCP 47, "" for the default), for later notices.
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
    auth_epoch: int = 0
    lang: str = ""


@dataclass(frozen=True, slots=True)
class SessionRow:
    """An ephemeral browser key's session with one user.

    ``subject`` is the canonical mailbox its codes go to (the store keeps only its salted hash):
    every session of one mailbox and code kind redeems that mailbox's codes, whoever asked for
    them. ``code_expires_at`` is the session's own deadline for a code (set when it asked for one).
    ``code_hmac`` is only set for sessions of older versions, whose code was the session's own.
    ``decoy`` sessions (private mode) have no codes at all: a stranger sees the same answers
    whether an address has an account or not. ``claim_pubkey``/``claim_backup``: what a
    ``register`` session will activate once its code matches (kept here, not on the user, so a
    pending signup claims nothing). ``auth_until``: until then the key may call the account
    methods for its user without the account key (set when a login or register code matched, or
    at activation), as long as ``auth_epoch`` is the account's (a revocation moves that).
    """

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
    claim_pubkey: str = ""
    claim_backup: str = ""
    auth_epoch: int = 0
    address: str = ""

    def authorises(self, now: int, user: UserRow | None) -> bool:
        """True while this key may act for ``user`` (its session's account): proven recently,
        not locked, and not revoked since."""
        return (
            user is not None
            and self.user_id == user.id
            and self.auth_until is not None
            and now < self.auth_until
            and self.state is not SessionState.LOCKED
            and self.auth_epoch == user.auth_epoch
        )


@dataclass(frozen=True, slots=True)
class CodeRow:
    """A code mailed to an address, for one kind of proof. ``code_hmac`` is an HMAC of the kind and
    the digits under the server secret (never the digits); a decoy's is ``-`` (matches nothing).
    ``long``: 16 digits, minted while the mailbox was being guessed at. ``expires_at`` moves when
    a new request joins the code. ``id`` is None until stored."""

    id: int | None
    kind: CodeKind
    code_hmac: str
    minted_at: int
    expires_at: int
    long: bool = False
    address: str = ""  # the key of the exact address it was mailed to, as the store loads it
    used: bool = False  # a code works once: then it matches only to say so

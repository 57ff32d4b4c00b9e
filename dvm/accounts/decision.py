"""What the state machine reads (:class:`View`) and returns (:class:`Decision`).

A decision is data: rows to write, emails to queue and the reply. The store writes all of it,
with the processed-request record, in one transaction; nothing is sent until that commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from dvm.accounts.rows import CodeRow, SessionRow, SessionState, UserRow
from dvm.protocol.results import Failure, Reply, Success

__all__ = ["Failure", "Reply", "Success"]  # the reply's data types, from the wire layer below


@dataclass(frozen=True, slots=True)
class Sends:
    """Codes mailed within the window to a wider scope (a domain, or everyone): how many, and
    the oldest of them (when the next one frees up)."""

    count: int = 0
    oldest: int | None = None


@dataclass(frozen=True, slots=True)
class View:
    """The rows that matter for one request, loaded by the store inside the transaction.

    ``session`` belongs to the event's pubkey; ``email_user`` matches the address the request is
    about; ``pending_users`` are the OTHER accounts with that address as a pending change;
    ``pubkey_user`` is the activated account holding the pubkey the request names (activation,
    register); ``account_user`` is the account the request acts for (account methods), found
    ``account_via`` its key (the event's or its seal's signer) or a session that proved the
    address. The code rows concern ONE address and its mailbox: the address the next code would go
    to (a method that mails one) or the session's (a method that checks or resends one), whose
    key is ``address_key``; ``session_address`` is the session's address in full when it is
    still the account's (its address, or its pending change's), else "". ``codes`` are the
    mailbox's recent codes (every address of it: each row names its address's key),
    ``address_sends`` when codes were minted for the exact address within the hour
    (``address_is_mailbox``: the address is its mailbox's canonical form, so its own codes are
    what its cap counts),
    ``code_sends`` when codes were minted for it within the hour, ``failures`` when wrong codes
    were tried on its codes within the failure window; ``domain_sends`` and ``all_sends`` count
    codes to its domain and to everyone. ``email_blocked``: the address (or a domain of it) is on
    the block list. ``seal_used``: the request's seal was carried by an earlier request.
    """

    session: SessionRow | None = None
    session_user: UserRow | None = None
    email_user: UserRow | None = None
    pubkey_user: UserRow | None = None
    code_sends: tuple[int, ...] = ()
    account_user: UserRow | None = None
    pending_users: tuple[UserRow, ...] = ()
    domain_sends: Sends = Sends()
    all_sends: Sends = Sends()
    failures: tuple[int, ...] = ()
    email_blocked: bool = False
    codes: tuple[CodeRow, ...] = ()
    address_sends: tuple[int, ...] = ()
    account_via: Literal["key", "session"] | None = None
    seal_used: bool = False
    address_key: str = ""
    session_address: str = ""
    address_is_mailbox: bool = False


class MailKind(enum.StrEnum):
    """Every email the service sends; templates are named after these."""

    SIGNUP_CODE = "signup_code"
    LOGIN_CODE = "login_code"
    WELCOME = "welcome"
    LOGIN_NOTICE = "login_notice"
    EMAIL_CHANGE_CODE = "email_change_code"  # to the new address
    EMAIL_CHANGE_NOTICE = "email_change_notice"  # to the old address: a change was requested
    EMAIL_CHANGED = "email_changed"  # to the old address: the change is done
    BACKUP_CHANGED = "backup_changed"
    DELETION_CODE = "deletion_code"
    ACCOUNT_DELETED = "account_deleted"
    EMAIL_CHANGE_CANCELLED = "email_change_cancelled"  # the address was claimed by its owner
    CODE_GUESSING = "code_guessing"  # wrong codes tripped the daily budget: told once


@dataclass(frozen=True, slots=True)
class Mail:
    """An email to queue. ``params`` feed the template; a code lives here only until sent."""

    kind: MailKind
    to: str
    user_id: str | None  # None: survives the user's erasure (the deletion notice)
    params: tuple[tuple[str, str | int], ...] = ()
    lang: str = ""  # BCP 47; "" for the operator's default templates

    def params_dict(self) -> dict[str, str | int]:
        return dict(self.params)


@dataclass(frozen=True, slots=True)
class PutUser:
    row: UserRow


@dataclass(frozen=True, slots=True)
class PutSession:
    row: SessionRow


@dataclass(frozen=True, slots=True)
class RecordCodeSend:
    """A code mailed to ``mailbox`` (canonical): the hourly caps count these; ``unproven`` ones
    (to an address nobody has proven yet) also count toward its domain's and everyone's shares."""

    mailbox: str
    at: int
    unproven: bool = True
    address: str = ""  # the exact address, plain or an ``h:`` key: login and deletion codes count by it


@dataclass(frozen=True, slots=True)
class RecordCodeFailure:
    """A wrong code tried on the codes of ``subject`` (a canonical mailbox): the guessing budget
    counts these."""

    subject: str
    at: int


@dataclass(frozen=True, slots=True)
class PutCode:
    """A code minted for ``address`` in ``mailbox`` (canonical), each plain or already an ``h:``
    key: the store keeps their salted hashes."""

    mailbox: str
    address: str
    row: CodeRow


@dataclass(frozen=True, slots=True)
class RefreshCode:
    """A request joined a live code: it lives until ``expires_at`` from now on."""

    code_id: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class SpendCode:
    """A code used: it works once, for whichever session presented it."""

    code_id: int


@dataclass(frozen=True, slots=True)
class RecordSeal:
    """A seal was carried: another event carrying it is refused until ``until`` (after which
    its own ``created_at`` window refuses it)."""

    seal_id: str
    until: int


@dataclass(frozen=True, slots=True)
class ReleaseChange:
    """Another account's pending change to an address its owner just proved ends: only its
    pending columns change, and only while it still names ``pending_email`` (that account may
    be written at the same moment by its own requests, which the store does not wait for)."""

    user_id: str
    pending_email: str
    at: int


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Erase a user: sessions, code records and mail go with it, its addresses leave the audit
    log and only their salted hash is kept (GDPR erasure). ``at`` None: the store's clock."""

    user_id: str
    at: int | None = None
    by: str = "the account owner"


@dataclass(frozen=True, slots=True)
class DecoyWork:
    """A private-mode decoy's mail: the store writes a mail row with sealed values, as for a real
    code, and withdraws it in the same transaction, so the commit writes what a real one writes
    and nothing is sent (its code and send rows are real: they count as a real address's)."""

    mailbox: str
    kind: MailKind
    params: tuple[tuple[str, str | int], ...]


Write = (
    PutUser
    | PutSession
    | RecordCodeSend
    | RecordCodeFailure
    | DeleteUser
    | PutCode
    | SpendCode
    | RecordSeal
    | DecoyWork
    | RefreshCode
    | ReleaseChange
)


Step = tuple[SessionState | None, SessionState | None]
"""A session's state before and after a request (None: no session)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the transition table: a method moving a session (None: no session yet)."""

    method: str
    session_from: SessionState | None
    session_to: SessionState | None
    outcome: str
    note: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request: the reply, and the writes and emails that go with it.

    A handler states the ``step`` it took; :func:`dvm.accounts.machine.decide` checks it against
    the table and records the row as ``transition``.
    """

    reply: Reply
    writes: tuple[Write, ...] = field(default=())
    mails: tuple[Mail, ...] = field(default=())
    step: Step | None = None
    transition: Transition | None = None

    @property
    def outcome(self) -> str:
        """``"ok"`` or the error code: what logs and the processed-request table record."""
        return "ok" if isinstance(self.reply, Success) else self.reply.code

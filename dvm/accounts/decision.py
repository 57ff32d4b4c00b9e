"""What the state machine reads (:class:`View`) and returns (:class:`Decision`).

A decision is data: rows to write, emails to queue and the reply. The store writes all of it,
with the processed-request record, in one transaction; nothing is sent until that commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from dvm.accounts.rows import SessionRow, SessionState, UserRow
from dvm.errors import RequestError


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
    ``pubkey_user`` owns the account pubkey named by the request (activation); ``account_user``
    owns the event's pubkey (account-key methods). ``code_sends`` are the times codes went to
    the mailbox the next code would go to, within the window; ``domain_sends`` and ``all_sends``
    count its domain and every mailbox. ``failures`` are the times of wrong codes for the
    session's subject within the last day.
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
    """A code mailed to ``mailbox`` (canonical): the hourly caps count these."""

    mailbox: str
    at: int


@dataclass(frozen=True, slots=True)
class RecordCodeFailure:
    """A wrong code for ``subject`` (a canonical mailbox): the daily guessing budget counts these."""

    subject: str
    at: int


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Erase a user: sessions, code records and queued mail go with it (GDPR erasure)."""

    user_id: str


Write = PutUser | PutSession | RecordCodeSend | RecordCodeFailure | DeleteUser


@dataclass(frozen=True, slots=True)
class Success:
    """A successful reply; ``data`` is None for an empty reply content."""

    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """An error reply: a stable code, a human message and small integer details."""

    code: str
    message: str
    details: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, error: RequestError) -> Failure:
        return cls(error.code, error.message, tuple(sorted(error.details.items())))


Reply = Success | Failure


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

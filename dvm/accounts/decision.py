"""What the state machine reads (:class:`View`) and returns (:class:`Decision`).

A decision is data: rows to write, emails to queue and the reply. The store writes all of it,
with the processed-request record, in one transaction; nothing is sent until that commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from dvm.accounts.rows import SessionRow, UserRow
from dvm.errors import RequestError


@dataclass(frozen=True, slots=True)
class View:
    """The rows that matter for one request, loaded by the store inside the transaction.

    ``session`` belongs to the event's pubkey; ``email_user`` matches the request's email;
    ``pending_user`` has the request's email as a pending change; ``pubkey_user`` owns the
    account pubkey named by the request (activation); ``account_user`` owns the event's pubkey
    (account-key methods); ``code_sends`` are the times codes went to the request's subject
    user within the window; ``email_blocked``: that email (or its domain) is on the block list.
    """

    session: SessionRow | None = None
    session_user: UserRow | None = None
    email_user: UserRow | None = None
    pubkey_user: UserRow | None = None
    code_sends: tuple[int, ...] = ()
    account_user: UserRow | None = None
    pending_user: UserRow | None = None
    email_blocked: bool = False


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
    user_id: str
    at: int


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Erase a user: sessions, code records and mail go with it, its addresses leave the audit
    log and only their salted hash is kept (GDPR erasure). ``at`` None: the store's clock."""

    user_id: str
    at: int | None = None
    by: str = "the account owner"


Write = PutUser | PutSession | RecordCodeSend | DeleteUser


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


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request: the reply, and the writes and emails that go with it."""

    reply: Reply
    writes: tuple[Write, ...] = field(default=())
    mails: tuple[Mail, ...] = field(default=())

    @property
    def outcome(self) -> str:
        """``"ok"`` or the error code: what logs and the processed-request table record."""
        return "ok" if isinstance(self.reply, Success) else self.reply.code

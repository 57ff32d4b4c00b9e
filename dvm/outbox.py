"""The rows of the two outboxes, replies and mail: what the store writes and the workers drain.

They live below both sides, so the store does not import the mailer or the relays, nor they the
store's internals: the service commits these rows, the publisher and the mail worker send them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvm.accounts.decision import MailKind
from dvm.nostr.event import Event


@dataclass(frozen=True, slots=True)
class OutboxMail:
    """A queued mail, claimed for sending."""

    id: int
    message_token: str
    kind: MailKind
    recipient: str
    params: str  # sealed (dvm.store.sealed): opened only to build the message
    attempts: int
    created_at: int
    lang: str = ""  # the templates' language (BCP 47), "" for the default


@dataclass(frozen=True, slots=True)
class MailClaim:
    """A worker run's claim: rows it holds (``claimed_by``) come back after ``lease_s``."""

    claimer: str
    lease_s: int


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A reply to (re)publish: the request it answers, the reply event, attempts so far."""

    event_id: str
    reply: Event
    attempts: int


@dataclass(frozen=True, slots=True)
class ReplyMark:
    """What publishing learnt about one reply: published at ``at``, or to try again at ``at``."""

    event_id: str
    published: bool
    at: int

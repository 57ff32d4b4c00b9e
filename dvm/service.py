"""The account service: one request, one transaction.

For each authenticated request, inside the daemon's database call: answer from storage if the
event was seen before; otherwise load the rows that matter, let the pure state machine decide,
build and sign the reply, and write rows + queued mails + the request record (with its reply, the
outbox) before one COMMIT. Publication and mail delivery read the outboxes after the commit, so a
crash at any point leaves either the whole request or none of it.

Several queued requests may share one transaction (group commit, one fsync); each runs in its own
savepoint, so a failure rolls back that request alone.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from dvm.accounts.decision import Decision, Failure
from dvm.accounts.machine import Context, decide
from dvm.accounts.rules import AccountRules
from dvm.errors import InternalError, NostrError
from dvm.mailer.outbox import MailClaim, OutboxMail
from dvm.mailer.sealed import ParamsSeal
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import Rng
from dvm.protocol.intake import Incoming, IntakeRules, open_request
from dvm.protocol.methods import ACCOUNT_KEY_METHODS, Activate, ChangeEmail, RequestAccount, RequestLogin
from dvm.protocol.replies import build_reply
from dvm.ratelimit import KeyRateLimiter
from dvm.store import repository
from dvm.store.database import immediate, savepoint
from dvm.store.writebehind import Update


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything the service enforces, grouped."""

    intake: IntakeRules = field(default_factory=IntakeRules)
    accounts: AccountRules = field(default_factory=AccountRules)
    reply_ttl_s: int = 3600
    publish_grace_s: int = 30  # before the retry loop republishes a reply not yet marked published


@dataclass(frozen=True, slots=True)
class Handled:
    """A request answered: by a new decision, or from storage (``replayed``)."""

    event_id: str
    method: str
    outcome: str
    reply_id: str
    reply_event: str
    replayed: bool
    claimed_mails: tuple[OutboxMail, ...] = ()  # with ``mail_claim``: the mail to send now


class AccountService:
    """Decides requests against the store, inside a :meth:`~dvm.store.database.Database.run` call."""

    def __init__(
        self,
        encryptor: Encryptor,
        code_secret: bytes,
        rules: ServiceRules | None = None,
        rng: Rng = secrets.token_bytes,
    ) -> None:
        if len(code_secret) < 16:
            raise ValueError("code secret must be at least 16 bytes")
        self.encryptor = encryptor
        self.rules = rules or ServiceRules()
        self._secret = code_secret
        self._rng = rng
        # Set by the daemon: mail is committed already claimed by its mail worker's run.
        self.mail_claim: MailClaim | None = None
        self.mail_seal = ParamsSeal(code_secret)  # queued mail's params (codes) sealed at rest

    @property
    def pubkey(self) -> str:
        return self.encryptor.key.pubkey_hex

    def open(self, event: Event, now: int) -> Incoming:
        """Authenticate and decode an event (pure; raises ``InvalidEvent`` for silence)."""
        return open_request(event, self.encryptor, self.rules.intake, now)

    def handle(self, conn: sqlite3.Connection, incoming: Incoming, now: int) -> Handled:
        """Decide one request in its own transaction."""
        with immediate(conn):
            return self._handle(conn, incoming, now)

    def handle_batch(
        self,
        conn: sqlite3.Connection,
        batch: Sequence[Incoming],
        now: int,
        bookkeeping: Update | None = None,
    ) -> list[Handled | Exception]:
        """Decide several requests in one transaction, each atomic on its own (savepoints).

        ``bookkeeping`` runs first in the same transaction: the caller's small idempotent updates
        (replies marked published, mails marked sent) ride along instead of paying for a commit of
        their own.
        """
        results: list[Handled | Exception] = []
        with immediate(conn):
            if bookkeeping is not None:
                bookkeeping(conn)
            for incoming in batch:
                try:
                    with savepoint(conn):
                        results.append(self._handle(conn, incoming, now))
                except (sqlite3.IntegrityError, ValueError, InternalError) as exc:
                    results.append(exc)
        return results

    def open_events(self, events: Sequence[Event], now: int) -> list[Incoming | NostrError]:
        """Authenticate and decrypt a batch (pure: any thread or process may run it).

        Events to drop silently (malformed, forged, not for us) come back as their ``NostrError``.
        """
        opened: list[Incoming | NostrError] = []
        for event in events:
            try:
                opened.append(self.open(event, now))
            except NostrError as exc:
                opened.append(exc)
        return opened

    def handle_opened(
        self,
        conn: sqlite3.Connection,
        opened: Sequence[Incoming | NostrError],
        now: int,
        limiter: KeyRateLimiter | None = None,
        bookkeeping: Update | None = None,
    ) -> list[tuple[Incoming | None, Handled | Exception]]:
        """Decide an opened batch in one transaction, after the per-key budget.

        Keys over ``limiter``'s budget are dropped like forged events: ``(None, NostrError)``.
        """
        checked: list[Incoming | NostrError] = []
        for item in opened:
            if (
                isinstance(item, Incoming)
                and limiter is not None
                and not limiter.allow(item.event.pubkey, now)
            ):
                checked.append(NostrError("over the per-key request limit"))
            else:
                checked.append(item)
        requests = [o for o in checked if isinstance(o, Incoming)]
        results = iter(self.handle_batch(conn, requests, now, bookkeeping))
        return [(o, next(results)) if isinstance(o, Incoming) else (None, o) for o in checked]

    def _handle(self, conn: sqlite3.Connection, incoming: Incoming, now: int) -> Handled:
        event = incoming.event
        stored = repository.stored_reply(conn, event.id)
        if stored is not None:
            return Handled(
                event.id, incoming.method, stored.outcome, stored.reply_id, stored.reply_event, True
            )
        decision = self._decide(conn, incoming, now)
        reply = build_reply(
            self.encryptor,
            event,
            incoming.scheme,
            decision.reply,
            self.rules.intake.reply_kind,
            now,
            self.rules.reply_ttl_s,
        )
        reply_json = reply.to_json()
        repository.apply_writes(conn, decision.writes)
        claimed = []
        for mail in decision.mails:
            token = self._rng(16).hex()
            row = repository.queue_mail(
                conn, mail, token, event.id, now, self.mail_claim, seal=self.mail_seal
            )
            if row is not None:
                claimed.append(row)
        repository.record_request(
            conn,
            event.id,
            event.pubkey,
            incoming.method,
            decision.outcome,
            event.created_at,
            reply.id,
            reply_json,
            now,
            self.rules.publish_grace_s,
        )
        return Handled(
            event.id,
            incoming.method,
            decision.outcome,
            reply.id,
            reply_json,
            False,
            tuple(claimed),
        )

    def _decide(self, conn: sqlite3.Connection, incoming: Incoming, now: int) -> Decision:
        request = incoming.request
        if request is None:
            refusal = incoming.refusal or InternalError()
            return Decision(Failure.of(refusal))
        email = request.email if isinstance(request, RequestAccount | RequestLogin | ChangeEmail) else None
        account_pubkey = request.pubkey if isinstance(request, Activate) else None
        rules = self.rules.accounts
        view = repository.load_view(
            conn,
            incoming.event.pubkey,
            email,
            account_pubkey,
            now - rules.code_window_s,
            account_key=request.method in ACCOUNT_KEY_METHODS,
            reservations=isinstance(request, RequestAccount | ChangeEmail),
        )
        return decide(request, incoming.event.pubkey, view, Context(now, self._rng, rules, self._secret))

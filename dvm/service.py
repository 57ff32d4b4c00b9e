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
from dataclasses import dataclass

from dvm.accounts.code_rules import counted
from dvm.accounts.decision import Decision, DecoyWork, Failure, RecordSeal
from dvm.accounts.machine import Context, decide
from dvm.errors import InternalError
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import Rng
from dvm.outbox import MailClaim, OutboxMail
from dvm.protocol.intake import Incoming
from dvm.protocol.methods import (
    ACCOUNT_KEY_METHODS,
    Activate,
    ChangeEmail,
    Method,
    Register,
    RequestAccount,
    RequestLogin,
)
from dvm.protocol.replies import build_reply
from dvm.rules import ServiceRules
from dvm.store import keylocks, repository
from dvm.store.database import DATABASE_ERRORS, Conflict, immediate
from dvm.store.keylocks import KeyLocks
from dvm.store.memo import Batch, Memo
from dvm.store.sealed import ParamsSeal


@dataclass(frozen=True, slots=True)
class Answer:
    """A request answered: by a new decision, or from storage (``replayed``)."""

    event_id: str
    method: str
    outcome: str
    reply: Event
    replayed: bool
    mails: tuple[OutboxMail, ...] = ()  # committed already claimed by ``mail_claim``: send now
    stored: bool = True  # False: a refusal at intake, answered from memory and kept nowhere


class AccountService:
    """Commits requests against the store, inside a :meth:`~dvm.store.database.Database.run` call.

    With ``mail_claim``, mail is committed already claimed by that mail worker run and comes back
    in :attr:`Answer.mails` for it to send at once; without, the worker finds it by polling.
    """

    def __init__(
        self,
        encryptor: Encryptor,
        code_secret: bytes,
        rules: ServiceRules | None = None,
        rng: Rng = secrets.token_bytes,
        mail_claim: MailClaim | None = None,
        mail_seal: ParamsSeal | None = None,
    ) -> None:
        if len(code_secret) < 16:
            raise ValueError("code secret must be at least 16 bytes")
        self.encryptor = encryptor
        self.rules = rules or ServiceRules()
        self.mail_claim = mail_claim
        self.mail_seal = mail_seal or ParamsSeal(code_secret)  # queued mail's values sealed at rest
        self._secret = code_secret
        self._rng = rng
        self._memo = Memo()  # what only the daemon's own writes change, across transactions

    @property
    def pubkey(self) -> str:
        return self.encryptor.key.pubkey_hex

    def refuse(self, incoming: Incoming, now: int) -> Answer:
        """Answer a request refused at intake (stale, undecodable, below its method's PoW) from
        memory: nothing was decided, so nothing is stored and nothing would be decided twice."""
        failure = Failure.of(incoming.refusal or InternalError())
        reply = build_reply(
            self.encryptor,
            incoming.event,
            incoming.scheme,
            failure,
            self.rules.intake.reply_kind,
            now,
            self.rules.reply_ttl_s,
            empty_success=self.rules.empty_success,
        )
        return Answer(incoming.event.id, incoming.method, failure.code, reply, False, stored=False)

    def replay(self, incoming: Incoming, stored: repository.StoredReply) -> Answer:
        """Answer a copy of a request decided already with its stored reply, even when the copy
        arrives too late to be taken (another relay, another daemon, after the window): a
        client must never see a refusal next to the decision."""
        return Answer(incoming.event.id, incoming.method, stored.outcome, stored.reply, True)

    def commit(
        self,
        conn: sqlite3.Connection,
        batch: Sequence[Incoming],
        now: int,
        bookkeeping: repository.Bookkeeping | None = None,
    ) -> list[Answer | Exception]:
        """Decide and write ``batch`` in one transaction, each request atomic on its own.

        ``bookkeeping`` is written first in the same transaction: facts learnt after earlier
        commits (replies published) ride along instead of paying for a commit of their own.
        """
        answers: list[Answer | Exception] = []
        try:
            with immediate(conn, keyed=True):
                if bookkeeping is not None:
                    repository.write_bookkeeping(conn, bookkeeping)
                keys = self._memo.batch(conn)  # salted keys once a batch, not once a counter
                locks = keylocks.lock_batch(conn, batch, keys.salt)  # PostgreSQL: what the batch touches
                for incoming in batch:
                    answers.append(self._commit_saved(conn, incoming, now, keys, locks))
        except BaseException:
            self._memo.forget()  # rolled back: what it remembered of this transaction is wrong
            raise
        return answers

    def _commit_saved(
        self, conn: sqlite3.Connection, incoming: Incoming, now: int, keys: Batch, locks: KeyLocks | None
    ) -> Answer | Exception:
        """One request in a savepoint of its own (its counts taken back out of memory if it
        rolls back). On a shared database a uniqueness conflict (a row no lock foresaw, written
        by another daemon meanwhile) is decided again, once: the second try reads that row."""
        for retry in (False, True):
            try:
                with keys.request():
                    return self._commit_one(conn, incoming, now, keys, locks)
            except Conflict as exc:
                if retry or locks is None:
                    return exc
            except (sqlite3.IntegrityError, ValueError, InternalError) as exc:
                return exc
            except DATABASE_ERRORS:
                raise  # locked, full, unreachable: the whole batch is retried, never dropped
            except Exception as exc:  # a bug this request met: it alone rolls back, unanswered,
                return exc  # so that it cannot hold the rest of its batch back on every retry
        raise AssertionError("unreachable")

    def _commit_one(
        self, conn: sqlite3.Connection, incoming: Incoming, now: int, keys: Batch, locks: KeyLocks | None
    ) -> Answer:
        event = incoming.event
        stored = repository.stored_reply(conn, event.id)
        if stored is not None:
            return Answer(event.id, incoming.method, stored.outcome, stored.reply, True)
        decision = self._decision(conn, incoming, now, keys, locks)
        if incoming.peer_secrets is not None:  # opened in the worker: its ECDH serves the reply
            self.encryptor.remember(bytes.fromhex(event.pubkey), incoming.peer_secrets)
        reply = build_reply(
            self.encryptor,
            event,
            incoming.scheme,
            decision.reply,
            self.rules.intake.reply_kind,
            now,
            self.rules.reply_ttl_s,
            empty_success=self.rules.empty_success,
        )
        repository.apply_writes(conn, decision.writes, keys)
        for work in decision.writes:
            if isinstance(work, DecoyWork):
                repository.decoy_work(conn, work, self._rng(16).hex(), now, seal=self.mail_seal)
        if incoming.seal_id is not None and incoming.request is not None:
            # A seal is used once: its own created_at window (at most twice the request's
            # from now) closes before this record goes.
            until = now + 2 * self.rules.intake.created_at_window_s
            repository.apply_writes(conn, (RecordSeal(incoming.seal_id, until),), keys)
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
            repository.RequestRecord(event, incoming.method, decision.outcome, reply),
            now,
            self.rules.publish_grace_s,
        )
        return Answer(event.id, incoming.method, decision.outcome, reply, False, tuple(claimed))

    def _decision(
        self, conn: sqlite3.Connection, incoming: Incoming, now: int, keys: Batch, locks: KeyLocks | None
    ) -> Decision:
        request = incoming.request
        if request is None:
            refusal = incoming.refusal or InternalError()
            return Decision(Failure.of(refusal))
        addressed = RequestAccount | Register | RequestLogin | ChangeEmail
        email = request.email if isinstance(request, addressed) else None
        account_pubkey = request.pubkey if isinstance(request, Activate | Register) else None
        rules = self.rules.accounts
        view = repository.load_view(
            conn,
            incoming.event.pubkey,
            email,
            account_pubkey,
            now,
            rules.code_window_s,
            account_key=request.method in ACCOUNT_KEY_METHODS,
            signer=incoming.signer,
            code_to=_CODE_TO.get(request.method),
            rivals=request.method in (Method.VERIFY_CODE, Method.CONFIRM_EMAIL),
            failures=request.method in (Method.VERIFY_CODE, Method.CONFIRM_EMAIL, Method.DELETE_ACCOUNT),
            failure_window_s=rules.code_failure_window_s,
            code_ttl_s=rules.code_ttl_s,
            seal_id=incoming.seal_id,
            batch=keys,
            counted=counted(rules),
            locks=locks,
        )
        context = Context(
            now,
            self._rng,
            rules,
            self._secret,
            pow_bits=incoming.pow_bits,
            pow_minimum=self.rules.intake.pow_bits.get(request.method, 0),
            lang=incoming.lang,
        )
        return decide(request, incoming.event.pubkey, view, context)


_CODE_TO: dict[Method, repository.CodeTo] = {
    Method.REQUEST_ACCOUNT: "email",
    Method.REGISTER: "email",
    Method.REQUEST_LOGIN: "email",
    Method.CHANGE_EMAIL: "email",
    Method.RESEND_CODE: "session",
    Method.REQUEST_DELETION: "account",
}
"""Where a method's code goes, if it may mail one: the caps are counted there."""

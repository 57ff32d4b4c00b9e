"""The mail worker: drains the outbox through a backend, with retries and dead letters.

Mail a request queues is committed already claimed by this worker run (attempt 1, under a lease)
and handed over in memory (``submit``): it goes out at once, with no claiming transaction. The
rest (retries, mail queued by the admin CLI, mail a killed run had claimed) is found by polling
the outbox every ``poll_s``: each pass claims the due rows under a lease. A pass renders and sends
its mails concurrently. Each outcome is written in a transaction of its own as soon as it is known:
a message the server accepted is marked ``sent`` before the backend lets any other message reach
its end of data (see :class:`~dvm.mailer.backends.Backend`; while the database refuses the mark,
the worker keeps trying and sends nothing more), so a crash can leave at most one accepted message
unmarked, and only that one goes out again (with the same Message-ID). The outcome's commit does
not wait for fsync on the event loop (:meth:`~dvm.store.database.Database.run_unsynced`): a killed
process loses no outcome, and a power loss loses at most those of the last
``store.database.SYNC_WINDOW_S`` (1 s), whose mails then go out once more. Temporary failures back off
exponentially (``retry_base_s * 2**(attempt-1)``, capped at ``retry_max_s``) up to
``max_attempts``; permanent ones (a 5xx reply, an address not mailable under today's rules, no
SMTPUTF8 for a non-ASCII address, values that cannot be encoded or opened) go straight to the dead
letters with the reason, logged at WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from dvm.backoff import Backoff
from dvm.config import MailSettings
from dvm.errors import ConfigError, InvalidEmail
from dvm.mailer import outbox
from dvm.mailer.backends import Backend, DeliveryError
from dvm.mailer.message import Outgoing, Sender, build_message
from dvm.mailer.templates import Templates
from dvm.outage import Outage
from dvm.protocol.email_address import normalise_email
from dvm.store.database import Store, run_unsynced, unavailable
from dvm.store.leases import MAX_CLOCK_SKEW_S
from dvm.store.sealed import ParamsSeal, UnsealError

log = logging.getLogger("sigit.mail")

WRITE_RETRY_S = 1.0  # while the database refuses an outcome (locked, full)


class MailWorker:
    def __init__(
        self,
        db: Store,
        backend: Backend,
        templates: Templates,
        sender: Sender,
        settings: MailSettings,
        clock: Callable[[], float] = time.time,
        *,
        seal: ParamsSeal,
    ) -> None:
        self.db = db
        self.backend = backend
        self.templates = templates
        self.sender = sender
        self.settings = settings
        self._clock = clock
        self._backoff = Backoff(settings.retry_base_s, settings.retry_max_s, jitter=0.0)
        self._seal = seal  # opens the sealed params of a row, only to build its message
        self._wake = asyncio.Event()
        self._fresh: list[outbox.OutboxMail] = []
        where = "the outbox directory" if settings.backend == "file" else f"{settings.host}:{settings.port}"
        self.server = Outage(log, f"mail server ({where})", clock=clock)  # down: one WARNING, back: INFO
        self.lease_s = int(max(60.0, 4 * settings.timeout_s))
        self.run_id = secrets.token_hex(8)  # whose claims are whose: see release_claims
        self.claim = outbox.MailClaim(self.run_id, self.lease_s)
        self._released = False
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))
        self._claimed_at: dict[tuple[int, int], float] = {}  # (id, attempts) -> when claimed
        # How long a claim is surely still this run's: half its lease; on a shared database less
        # the clocks' possible difference, since another daemon judges the lease by its own clock.
        skew = 2 * MAX_CLOCK_SKEW_S if db.shared else 0
        self._fresh_for_s = max(0.0, self.lease_s / 2 - skew)

    def submit(self, mails: Sequence[outbox.OutboxMail]) -> None:
        """Send mail committed already claimed by ``self.claim``, now."""
        if mails:
            now = self._clock()
            self._claimed_at.update(((m.id, m.attempts), now) for m in mails)
            self._fresh.extend(mails)
            self._wake.set()

    def backoff_s(self, attempts: int) -> int:
        """The wait before the next try of a mail tried ``attempts`` times (the one back-off), in
        whole seconds as the outbox keeps times: at least 1 (a sub-second ``mail.retry_base_s``
        would otherwise make a retry due at once, and one pass would spend every attempt)."""
        return max(1, math.ceil(self._backoff.delay(attempts - 1)))

    async def run(self, stopping: asyncio.Event) -> None:
        """Send submitted mail as it comes and poll the outbox every ``poll_s``, until ``stopping``."""
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while not stopping.is_set():
            try:
                if self._fresh:
                    await self.send_submitted()
                if loop.time() >= next_poll:
                    await self.drain()
                    next_poll = loop.time() + self.settings.poll_s
            except Exception as exc:  # a database hiccup must not end mail delivery
                if unavailable(exc):  # the store logs the outage, once
                    log.debug("mail pass failed (%s); retrying", type(exc).__name__)
                else:
                    log.exception("mail pass failed; retrying")
                next_poll = loop.time() + self.settings.poll_s
            if self._fresh:
                continue
            self._wake.clear()
            sleeper = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait(
                {sleeper, stopper},
                timeout=max(0.0, next_poll - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            sleeper.cancel()
            stopper.cancel()

    async def send_submitted(self) -> int:
        """Send what ``submit`` handed over; return how many were attempted."""
        batch, self._fresh = self._fresh, []
        await self._pass(batch)
        return len(batch)

    async def drain(self) -> int:
        """Send every row due now in the outbox; return how many were attempted."""
        total = 0
        batch = max(1, self.settings.concurrency) * 8
        # Mail a killed predecessor had claimed goes out now, not after its lease; on a shared
        # database the other claims may be live daemons' and are taken over only past their lease.
        if not self._released and not self.db.shared:
            released = await self.db.run(
                partial(outbox.release_claims, claimer=self.run_id, now=int(self._clock()))
            )
            if released:
                log.warning("took over %d mail(s) claimed by a previous run", released)
            self._released = True
        while True:
            due = await self.db.run(
                partial(
                    outbox.claim_due,
                    now=int(self._clock()),
                    limit=batch,
                    lease_s=self.lease_s,
                    claimer=self.run_id,
                )
            )
            if not due:
                return total
            now = self._clock()
            self._claimed_at.update(((m.id, m.attempts), now) for m in due)
            await self._pass(due)
            total += len(due)

    async def _pass(self, mails: list[outbox.OutboxMail]) -> None:
        # Built on the event loop's thread, about 0.1-0.2 ms of CPU a message (scripts/bench mail):
        # a thread would only add a hand-off, since building holds the GIL throughout.
        built = self._build_all(mails, int(self._clock()))
        await asyncio.gather(*(self._deliver(m, b) for m, b in zip(mails, built, strict=True)))

    async def _deliver(self, mail: outbox.OutboxMail, built: Outgoing | ConfigError | DeliveryError) -> None:
        claimed_at = self._claimed_at.pop((mail.id, mail.attempts), None)
        if isinstance(built, ConfigError):
            log.error("mail %d (%s) dead: template: %s", mail.id, mail.kind, built)
            await self._write(outbox.Outcome(mail, "dead", f"template: {built}"))
            return
        if isinstance(built, DeliveryError):
            await self._write(self._failed(mail, built))
            return

        async def accepted() -> None:
            self.server.ok()
            log.info("mail %d (%s) sent, attempt %d", mail.id, mail.kind, mail.attempts)
            await self._write(outbox.Outcome(mail, "sent", at=int(self._clock())))

        async with self._slots:  # a mail waits here, in memory, while its lease runs
            if not await self._still_ours(mail, claimed_at):
                return
            try:
                await self.backend.send(built, accepted)
            except DeliveryError as exc:
                await self._write(self._failed(mail, exc))

    async def _still_ours(self, mail: outbox.OutboxMail, claimed_at: float | None) -> bool:
        """Whether this run may send ``mail`` now: its claim is fresh (less than half the lease
        old), or renewing it finds nobody claimed the row since. Past its lease another daemon, or
        this run's next pass, may have claimed and sent it: sending it here too would be a second
        sender, not a crash's one duplicate."""
        now = self._clock()
        if claimed_at is not None and now - claimed_at < self._fresh_for_s:
            return True
        try:
            held = await self.db.run(
                partial(outbox.renew, mail=mail, claimer=self.run_id, now=int(now), lease_s=self.lease_s)
            )
        except Exception as exc:  # cannot tell: leave it to whoever holds it after the lease
            level = logging.DEBUG if unavailable(exc) else logging.WARNING
            log.log(level, "mail %d claim not renewed (%s); not sent now", mail.id, type(exc).__name__)
            return False
        if not held:
            log.info("mail %d (%s) claimed by another sender meanwhile; not sent here", mail.id, mail.kind)
        return held

    async def _write(self, outcome: outbox.Outcome) -> None:
        """Write an outcome now, in a transaction of its own; while the database refuses, try again
        every ``WRITE_RETRY_S``. A ``sent`` mark is written under the backend's acceptance turn,
        so meanwhile no other message is accepted (and none can become a second duplicate). The
        commit reaches the WAL before this returns (a kill loses nothing) and the disk within the
        store's sync window (see the module docstring)."""
        refused = False
        while True:
            try:
                await run_unsynced(self.db, partial(outbox.record, outcomes=[outcome]))
                return
            except Exception as exc:  # locked or full: the row stays claimed under our lease
                if not refused:
                    level = logging.DEBUG if unavailable(exc) else logging.WARNING
                    log.log(
                        level,
                        "mail %d outcome not written yet (%s); retrying",
                        outcome.mail.id,
                        type(exc).__name__,
                    )
                    refused = True
            await asyncio.sleep(WRITE_RETRY_S)

    def _build_all(
        self, due: list[outbox.OutboxMail], now: int
    ) -> list[Outgoing | ConfigError | DeliveryError]:
        return [self._build(mail, now) for mail in due]

    def _build(self, mail: outbox.OutboxMail, now: int) -> Outgoing | ConfigError | DeliveryError:
        """The message, or why it can never be sent: a template the operator must fix, or an
        address or content no server can take (permanent: retrying would not change it)."""
        try:
            if normalise_email(mail.recipient) != mail.recipient:  # e.g. queued by an older version
                raise InvalidEmail("it is not in its normal form")
        except InvalidEmail as exc:
            return DeliveryError(f"the address is not mailable: {exc.message}", permanent=True)
        try:
            params = self._seal.open(mail.params, mail.message_token)
        except UnsealError as exc:
            return DeliveryError(str(exc), permanent=True)
        try:
            rendered = self.templates.render(mail.kind, mail.recipient, params, now, mail.lang or None)
            return build_message(rendered, mail.recipient, mail.message_token, self.sender, now)
        except ConfigError as exc:
            return exc
        except (UnicodeError, ValueError, TypeError) as exc:
            return DeliveryError(f"cannot build the message: {type(exc).__name__}", permanent=True)

    def _failed(self, mail: outbox.OutboxMail, exc: DeliveryError) -> outbox.Outcome:
        if exc.unreachable:
            self.server.failed(exc.reason)
        else:
            self.server.ok()  # it answered, if only to refuse this one
        if exc.permanent or mail.attempts >= self.settings.max_attempts:
            reason = exc.reason if exc.permanent else f"gave up after {mail.attempts} attempts: {exc.reason}"
            log.warning("mail %d (%s) dead: %s", mail.id, mail.kind, reason)
            return outbox.Outcome(mail, "dead", reason)
        retry_at = int(self._clock()) + self.backoff_s(mail.attempts)
        when = datetime.fromtimestamp(retry_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        level = logging.DEBUG if exc.unreachable else logging.INFO  # the outage is told once, above
        log.log(level, "mail %d (%s) retry at %s: %s", mail.id, mail.kind, when, exc.reason)
        return outbox.Outcome(mail, "retry", exc.reason, retry_at)

"""The mail worker: drains the outbox through a backend, with retries and dead letters.

It is woken when a request queues mail and otherwise polls; each pass claims the due rows (under
a lease), renders and sends them concurrently, and records the outcome. Temporary failures back
off exponentially (``retry_base_s * 2**(attempt-1)``, capped at ``retry_max_s``) up to
``max_attempts``; permanent ones go straight to the dead letters with the server's reason.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from functools import partial

from dvm.config import MailSettings
from dvm.errors import ConfigError
from dvm.mailer import outbox
from dvm.mailer.backends import Backend, DeliveryError
from dvm.mailer.message import Outgoing, Sender, build_message
from dvm.mailer.templates import Templates
from dvm.store.database import Database

log = logging.getLogger("sigit.mail")


class MailWorker:
    def __init__(
        self,
        db: Database,
        backend: Backend,
        templates: Templates,
        sender: Sender,
        settings: MailSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.backend = backend
        self.templates = templates
        self.sender = sender
        self.settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self.lease_s = int(max(60.0, 4 * settings.timeout_s))
        self.run_id = secrets.token_hex(8)  # whose claims are whose: see release_claims
        self._released = False

    def wake(self) -> None:
        """Look at the outbox now (called after a commit that queued mail)."""
        self._wake.set()

    def backoff_s(self, attempts: int) -> int:
        return int(min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** max(0, attempts - 1)))

    async def run(self, stopping: asyncio.Event) -> None:
        """Drain until ``stopping`` is set; sleep until woken, the next due row, or ``poll_s``."""
        while not stopping.is_set():
            try:
                await self.drain()
            except Exception:  # a database hiccup must not end mail delivery
                log.exception("mail pass failed; retrying")
            self._wake.clear()
            sleeper = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait(
                {sleeper, stopper}, timeout=self.settings.poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            sleeper.cancel()
            stopper.cancel()

    async def drain(self) -> int:
        """Send every row due now; return how many were attempted."""
        total = 0
        batch = max(1, self.settings.concurrency) * 8
        if not self._released:  # mail a killed predecessor had claimed goes out now, not after its lease
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
            # About 0.5 ms of CPU per message: built off the event loop, the whole pass in one hop.
            built = await asyncio.to_thread(self._build_all, due, int(self._clock()))
            outcomes = await asyncio.gather(*(self._deliver(m, b) for m, b in zip(due, built, strict=True)))
            await self.db.run(partial(outbox.record, outcomes=list(outcomes)))
            total += len(due)

    async def _deliver(self, mail: outbox.OutboxMail, built: Outgoing | ConfigError) -> outbox.Outcome:
        if isinstance(built, ConfigError):
            log.error("mail %d (%s) dead: template: %s", mail.id, mail.kind, built)
            return outbox.Outcome(mail, "dead", f"template: {built}")
        try:
            await self.backend.send(built)
        except DeliveryError as exc:
            return self._failed(mail, exc)
        log.info("mail %d (%s) sent, attempt %d", mail.id, mail.kind, mail.attempts)
        return outbox.Outcome(mail, "sent", at=int(self._clock()))

    def _build_all(self, due: list[outbox.OutboxMail], now: int) -> list[Outgoing | ConfigError]:
        built: list[Outgoing | ConfigError] = []
        for mail in due:
            try:
                rendered = self.templates.render(mail.kind, mail.recipient, mail.params, now)
                built.append(build_message(rendered, mail.recipient, mail.message_token, self.sender, now))
            except ConfigError as exc:
                built.append(exc)
        return built

    def _failed(self, mail: outbox.OutboxMail, exc: DeliveryError) -> outbox.Outcome:
        if exc.permanent or mail.attempts >= self.settings.max_attempts:
            reason = exc.reason if exc.permanent else f"gave up after {mail.attempts} attempts: {exc.reason}"
            log.warning("mail %d (%s) dead: %s", mail.id, mail.kind, reason)
            return outbox.Outcome(mail, "dead", reason)
        retry_at = int(self._clock()) + self.backoff_s(mail.attempts)
        log.info("mail %d (%s) retry at %d: %s", mail.id, mail.kind, retry_at, exc.reason)
        return outbox.Outcome(mail, "retry", exc.reason, retry_at)

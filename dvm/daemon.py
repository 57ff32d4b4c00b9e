"""The long-running service: wiring and lifecycle, nothing else (uvicorn's ``Server`` is the model).

The parts, and who talks to whom::

    relays (RelayPool) --submit--> Pipeline: intake -> open (Opener) -> commit (AccountService)
         ^                                                                  | on_answered
         +----- Publisher (replies, retries, announcement) <---------------+
                MailWorker (mail outbox -> SMTP) <-------------------------+

Shutdown order (uvicorn's): stop taking events, drain the pipeline and publications with a
timeout, stop the mail worker, write what the write-behind holds, close relays and the database.
A second SIGINT/SIGTERM cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from dvm import __version__, health
from dvm.backoff import Backoff
from dvm.config import Settings, load_relays, optional_secret, read_secret
from dvm.errors import ConfigError, DVMError
from dvm.keyfile import parse_secret
from dvm.mailer.backends import Backend, FileBackend, SmtpBackend
from dvm.mailer.message import Sender
from dvm.mailer.templates import TemplateContext, Templates
from dvm.mailer.worker import MailWorker
from dvm.metrics import Metrics
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.opener import Opener
from dvm.outbox import PendingReply
from dvm.ownership import Ownership
from dvm.pipeline import Pipeline
from dvm.pricewatch import PriceWatch
from dvm.protocol.announcement import announcement, profile
from dvm.protocol.prefilter import plausible_request
from dvm.ratelimit import KeyRateLimiter
from dvm.relays.connection import RelayConnection
from dvm.relays.pool import RelayPool
from dvm.relays.publisher import Publisher
from dvm.service import AccountService, Answer
from dvm.store import repository
from dvm.store.backends import store_for
from dvm.store.database import Database
from dvm.store.leases import Leader
from dvm.store.retention import Retention
from dvm.store.sealed import ParamsSeal
from dvm.store.writebehind import WriteBehind
from dvm.systemd import Notifier

log = logging.getLogger("sigit.daemon")

WRITE_BEHIND_S = 1.0
"""Reply marks wait this long for a batch of requests to ride along in. At 10 req/s a batch comes
every 100 ms: with 50 ms most marks paid for a transaction of their own (daemon CPU 13% more a
request, docs/performance.md). A mark lost in a kill only republishes its reply after
``publish_grace_s`` (30 s), the same event."""


@dataclass(frozen=True, slots=True)
class Secrets:
    key: SecretKey
    code_secret: bytes
    smtp_password: str = ""
    store_password: str = ""

    @classmethod
    def load(cls, settings: Settings) -> Secrets:
        key = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings))
        code_secret = read_secret("code_secret", settings.daemon.code_secret_file, settings).encode()
        if len(code_secret) < 16:  # issue 15: a ConfigError (exit 2, like every setting)
            raise ConfigError("secret code_secret: must be at least 16 characters")
        password = ""
        if settings.mail.username:
            password = read_secret("smtp_password", settings.mail.password_file, settings)
        store_password = ""
        if settings.store.url:
            store_password = optional_secret("store_password", settings.store.password_file, settings)
        return cls(key, code_secret, password, store_password)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        *,
        clock: Callable[[], float] = time.time,
        backend: Backend | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self._clock = clock
        self.notifier = notifier or Notifier()
        self.db = store_for(
            settings.store.url, settings.path(settings.store.path), secrets.store_password, clock
        )
        rules = settings.service.rules()
        mail = settings.mail
        self.backend = backend or self._make_backend()
        seal = ParamsSeal(secrets.code_secret)  # queued mail's values (codes) sealed at rest
        self.mail = MailWorker(
            self.db,
            self.backend,
            Templates(
                TemplateContext(mail.link_template, mail.support_url, mail.code_in_subject),
                mail.templates_dir or None,
            ),
            Sender(mail.from_address, mail.from_name, mail.reply_to),
            mail,
            clock,
            seal=seal,
        )
        self.service = AccountService(
            Encryptor(secrets.key), secrets.code_secret, rules, mail_claim=self.mail.claim, mail_seal=seal
        )
        self.writebehind = WriteBehind(self.db, WRITE_BEHIND_S)
        intake = rules.intake
        self._junk_gate = (self.service.pubkey, intake.request_kind, intake.pow_gate_bits)
        # Of several daemons on one database: who runs the singletons, which runs are alive.
        self.leader = Leader(self.db, self.mail.run_id, clock)
        self.ownership = Ownership(self.db, self.mail.run_id, settings.store.takeover_s)
        self.retention = Retention(self.db, settings, clock, self.leader)  # pruning on a timer
        self.metrics = Metrics()  # always kept; served only with health.listen
        self.prices = PriceWatch()
        self.db.observe = self.metrics.database_call
        self.retention.on_pruned = lambda pruned: self.metrics.pruned(pruned.rows)
        relay = settings.relays
        self.pool = RelayPool(self._connection)
        self._relay_backoff = Backoff(relay.reconnect_base_s, relay.reconnect_max_s)
        self.publisher = Publisher(
            self.pool,
            self.db,
            self.writebehind,
            Backoff(relay.publish_retry_base_s, relay.publish_retry_max_s, jitter=0.0),
            self._announcement,
            clock,
            metrics=self.metrics,
            leader=self.leader,
        )
        d = settings.daemon
        self.pipeline = Pipeline(
            self.service,
            self.db,
            Opener(secrets.key, rules.intake, d.open_workers),
            self.writebehind,
            KeyRateLimiter(d.per_key_burst, d.per_key_per_s),
            KeyRateLimiter(d.refusal_replies_burst, d.refusal_replies_per_s, capacity=1),
            self._answered,
            batch_max=settings.store.batch_max,
            max_queued=d.max_in_flight,
            clock=clock,
            metrics=self.metrics,
            owner=self.ownership.mine if self.db.shared else None,
        )
        self.ownership.handback = self._take_over
        self.pipeline.on_broken = self.request_stop  # a stage stopped (a bug): stop, not stay up deaf
        self.ownership.on_settled = lambda outcome: self.metrics.left_to_owner.labels(outcome).inc()
        self._stopping = asyncio.Event()
        self._mail_stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock_file: Any = None
        self.health = health.for_daemon(self, self.metrics)  # None unless health.listen

    # --- wiring ------------------------------------------------------------------------------

    def _make_backend(self) -> Backend:
        mail = self.settings.mail
        if mail.backend == "file":
            return FileBackend(self.settings.path(mail.outbox_dir))
        return SmtpBackend(mail, self.secrets.smtp_password)

    def _connection(self, url: str) -> RelayConnection:
        return RelayConnection(
            url,
            on_event=self.pipeline.submit,
            make_filter=self._filter,
            key=self.secrets.key,
            backoff=self._relay_backoff,
            publish_timeout_s=self.settings.relays.publish_timeout_s,
            clock=self._clock,
            on_connect=self.publisher.announce,
            accept=self._plausible,
            catchup_page_limit=self.settings.relays.catchup_page_limit,
            catchup_max_s=self.settings.relays.catchup_max_s,
        )

    def _plausible(self, event: dict[str, Any]) -> bool:
        """Junk (wrong kind, not to us, no PoW) is dropped at the connection, before it costs a
        signature check or a place in the queue; it counts as a dropped event."""
        if plausible_request(event, *self._junk_gate):
            return True
        self.metrics.dropped_event()
        return False

    def _filter(self) -> dict[str, Any]:
        """Our subscription; ``since`` reaches back to requests sent while we were away: to when we
        last answered one, by our own clock (an event's ``created_at``, chosen by its author, must
        not move it: one dated in the future would make us deaf, or skip the downtime)."""
        rules = self.settings.service
        margin = self.settings.relays.since_margin_s
        now = int(self._clock())
        last = min(self.pipeline.stats.last_answered_at, now)
        since = max(last - margin, now - rules.created_at_window_s - margin)
        return {"kinds": [rules.request_kind], "#p": [self.service.pubkey], "since": since}

    def _announcement(self, now: int) -> tuple[Event, ...]:
        d = self.settings.daemon
        return (
            announcement(self.secrets.key, self.service.rules.intake, d.name, d.about, now),
            profile(self.secrets.key, d.name, d.about, d.nip05_domain, now),
        )

    def _answered(self, answers: list[Answer]) -> None:
        """Results of a commit: replies to the publisher, mail (committed claimed) to the worker;
        a busy domain's prices to the metrics and the log (a decided ``pow_too_low``: below the
        method's minimum it is refused at intake and not stored)."""
        self.publisher.submit([PendingReply(a.event_id, a.reply, 0) for a in answers if a.stored])
        self.publisher.send_unstored([a.reply for a in answers if not a.stored])
        self.mail.submit([mail for a in answers for mail in a.mails])
        priced = [a for a in answers if a.stored and not a.replayed and a.outcome == "pow_too_low"]
        for answer in priced:
            self.metrics.priced(answer.method)
        if priced:
            self.prices.priced(len(priced))
        self.prices.tick()

    async def _take_over(self, event: Event, relay: str) -> None:
        """Decide a request another daemon owned and did not decide (``dvm.ownership``)."""
        await self.pipeline.submit(event.to_dict(), relay, taken_over=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def handled(self) -> int:
        return self.pipeline.stats.handled

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._lock_database()
        await self.db.open()
        await self.retention.prepare()  # issue 15: an older database converted to incremental vacuum
        if self.health is not None:  # issue 15: /healthz answers from now on, /readyz once ready
            await self.health.start()
        pending = await self.db.run(partial(repository.replies_due_now, now=int(self._clock())))
        if pending:
            log.warning("%d reply(ies) from a previous run were not published yet; publishing", pending)
        last = await self.db.run(repository.last_processed_at)
        await self.leader.check()  # leader or not, before announcing or retrying anything
        await self.ownership.join()  # several daemons: which requests are ours, before the first
        await self.pipeline.opener.start()
        self.pipeline.start(last_answered_at=last or 0)
        self._spawn(self.mail.run(self._mail_stopping))
        self._spawn(self.publisher.run())
        if self.db.shared:
            self._spawn(self.leader.run())
            self._spawn(self.ownership.run())
        self._spawn(self.retention.run())
        if self.notifier.watchdog_interval_s:
            self._spawn(self._watchdog(self.notifier.watchdog_interval_s))
        await self.reload_relays()
        self.notifier.notify("READY=1", f"STATUS=serving as {self.service.pubkey[:16]}")
        log.info(
            "sigit-dvm %s serving as %s on %d relay(s)", __version__, self.service.pubkey, len(self.pool.urls)
        )

    def _lock_database(self) -> None:
        """One daemon per SQLite file: a second one would take over the first one's mail claims.
        (On PostgreSQL, daemons share the database: leases and row locks keep them apart.)"""
        if not isinstance(self.db, Database):
            return
        path = self.db.path.with_name(self.db.path.name + ".lock")
        self._lock_file = path.open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise DVMError(f"another sigit-dvm is already running on {self.db.path}") from exc

    async def reload_relays(self) -> None:
        urls = load_relays(self.settings.path(self.settings.relays.relays_file))
        added, removed = await self.pool.update(urls)
        self.notifier.notify(f"STATUS=relays {len(self.pool.urls)} (+{len(added)} -{len(removed)})")

    def request_stop(self) -> None:
        if self._stopping.is_set():
            log.warning("second stop request: cancelling in-flight work")
            for task in self._tasks:
                task.cancel()
            self._spawn(self.pipeline.close())
            self._spawn(self.publisher.close())
        self._stopping.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, then shut down in order. SIGHUP reloads relays."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self._reload_logged()))
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        if self.pipeline.broken:  # exit non-zero: systemd's Restart=on-failure starts us again
            raise DVMError(f"{self.pipeline.broken}; the daemon stopped (see the log for the traceback)")

    async def _reload_logged(self) -> None:
        try:
            await self.reload_relays()
        except DVMError as exc:
            log.error("SIGHUP: relays not reloaded: %s", exc)

    async def shutdown(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self.health is not None:  # /readyz fails from now on
            self.health.stopping()
        self._stopping.set()
        self.pipeline.stop_intake()
        with contextlib.suppress(Exception):  # the others take our share now, not after the lease
            await self.ownership.leave()
        timeout = self.settings.daemon.drain_timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pipeline.drain(), timeout)
        await self.publisher.drain(timeout)
        self._mail_stopping.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pipeline.close()
        await self.publisher.close()
        if self.db.is_open:
            await self.writebehind.close()
            with contextlib.suppress(Exception):  # another daemon takes over now, not after the lease
                await self.leader.step_down()
        await asyncio.to_thread(self.pipeline.opener.close)
        await self.pool.close()
        await self.backend.close()
        if self.db.is_open:
            await self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
        if self.health is not None:
            await self.health.close()
        log.info("sigit-dvm stopped after %d request(s)", self.handled)

    async def _watchdog(self, interval_s: float) -> None:
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

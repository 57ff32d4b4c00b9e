"""The long-running service: relays in, decisions committed, replies and mail out.

Pipeline, per event: a relay connection parses it and, if it is addressed to us and not seen in
this run, puts it on a bounded intake queue (a full queue stops that relay's reader: back-pressure,
not memory growth). Stage 1 takes whatever is queued (up to ``store.batch_max``) and has a worker
process authenticate and decrypt it (``daemon.open_workers``; with 0 workers, or for a batch under
``WORKER_MIN_BATCH``, the database call opens it); stage 2 decides the opened batch in ONE
database call and transaction (group commit; each request in its own savepoint) while the worker
opens the next batch on the other core. The database call runs on the event loop's thread
(``dvm.store.database`` says why). After the commit it publishes each reply and hands the
mail (committed already claimed by the mail worker's run) to the mail worker. Replies no relay
accepted stay in the outbox and are retried with backoff. What publishing and sending learn (reply
published, mail sent) rides along in the next batch's transaction (``store.writebehind``).

Shutdown order (uvicorn's): stop taking events, drain the queue and in-flight work with a timeout,
finish publishing, stop the mail worker, write what the write-behind holds, close relays and the
database. A second SIGINT/SIGTERM cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from dvm import health
from dvm.config import Settings, load_relays, read_secret
from dvm.errors import ConfigError, DVMError, NostrError
from dvm.keyfile import parse_secret
from dvm.mailer.backends import Backend, FileBackend, SmtpBackend
from dvm.mailer.message import Sender
from dvm.mailer.outbox import OutboxMail
from dvm.mailer.templates import TemplateContext, Templates
from dvm.mailer.worker import MailWorker
from dvm.metrics import Metrics
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import DEFAULT_LIMITS, Event, parse_event
from dvm.nostr.keys import SecretKey
from dvm.opener import Opener
from dvm.protocol.announcement import announcement
from dvm.protocol.intake import Incoming, addressed_to
from dvm.ratelimit import KeyRateLimiter
from dvm.relays.backoff import Backoff
from dvm.relays.connection import RelayConnection
from dvm.relays.pool import RelayPool
from dvm.service import AccountService, Handled
from dvm.store import repository
from dvm.store.database import Database
from dvm.store.retention import Retention
from dvm.store.writebehind import WriteBehind
from dvm.systemd import Notifier

log = logging.getLogger("sigit.daemon")

SEEN_CAPACITY = 100_000
PUBLISH_BATCH = 100
WRITE_BEHIND_S = 0.05  # replies marked published and mails marked sent wait this long for a batch
# Smaller batches are opened in the database call: the round trip to the worker process costs
# more CPU than opening a few events. When requests queue up, batches grow and the worker opens
# them in parallel with the commits.
WORKER_MIN_BATCH = 4


@dataclass(frozen=True, slots=True)
class Secrets:
    key: SecretKey
    code_secret: bytes
    smtp_password: str = ""

    @classmethod
    def load(cls, settings: Settings) -> Secrets:
        key = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings))
        code_secret = read_secret("code_secret", settings.daemon.code_secret_file, settings).encode()
        if len(code_secret) < 16:  # issue 15: a ConfigError (exit 2, like every setting)
            raise ConfigError("secret code_secret: must be at least 16 characters")
        password = ""
        if settings.mail.username:
            password = read_secret("smtp_password", settings.mail.password_file, settings)
        return cls(key, code_secret, password)


Opened = list[Incoming | NostrError]  # a batch after verify, decrypt and decode, in order


@dataclass
class _Item:
    event: Event
    received: float
    relay: str


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
        self.db = Database(settings.path(settings.store.path))
        rules = settings.service.rules()
        self.service = AccountService(Encryptor(secrets.key), secrets.code_secret, rules)
        self.backend = backend or self._make_backend()
        self.writebehind = WriteBehind(self.db, WRITE_BEHIND_S)
        self.retention = Retention(self.db, settings, clock)  # issue 15: pruning on a timer
        # --- issue 15: metrics (always kept; served only with health.listen) -----------------
        self.metrics = Metrics()
        self.db.observe = self.metrics.database_call
        self.retention.on_pruned = lambda pruned: self.metrics.pruned(pruned.rows)
        mail = settings.mail
        self.mail = MailWorker(
            self.db,
            self.backend,
            Templates(TemplateContext(mail.link_template, mail.support_url), mail.templates_dir or None),
            Sender(mail.from_address, mail.from_name, mail.reply_to),
            mail,
            clock,
            self.writebehind,
        )
        self.service.mail_claim = self.mail.claim
        relay = settings.relays
        self._relay_backoff = Backoff(relay.reconnect_base_s, relay.reconnect_max_s)
        self._publish_backoff = Backoff(relay.publish_retry_base_s, relay.publish_retry_max_s, jitter=0.0)
        self.pool = RelayPool(self._connection)
        self.intake: asyncio.Queue[_Item] = asyncio.Queue(maxsize=settings.daemon.max_in_flight)
        self.limiter = KeyRateLimiter(settings.daemon.per_key_burst, settings.daemon.per_key_per_s)
        self.opener = Opener(secrets.key, rules.intake, settings.daemon.open_workers)
        self._opened: asyncio.Queue[tuple[list[_Item], Opened | None, int]] = asyncio.Queue(maxsize=2)
        self._retry_backoff = Backoff(0.5, 10.0)  # a failing database is retried at least every 10 s
        self._seen: OrderedDict[str, None] = OrderedDict()  # decided event ids (bounded LRU)
        self._queued: set[Event] = set()  # events waiting in the intake (bounded by its size)
        self._last_created_at = 0
        self._accepting = False
        self._stopping = asyncio.Event()
        self._mail_stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publishing: set[asyncio.Task[Any]] = set()
        self._busy = 0
        self._failures = 0
        self.handled = 0
        self.health = health.for_daemon(self, self.metrics)  # issue 15: None unless health.listen

    # --- wiring ------------------------------------------------------------------------------

    def _make_backend(self) -> Backend:
        mail = self.settings.mail
        if mail.backend == "file":
            return FileBackend(self.settings.path(mail.outbox_dir))
        return SmtpBackend(mail, self.secrets.smtp_password)

    def _connection(self, url: str) -> RelayConnection:
        conn = RelayConnection(
            url,
            on_event=self._on_event,
            make_filter=self._filter,
            key=self.secrets.key,
            backoff=self._relay_backoff,
            publish_timeout_s=self.settings.relays.publish_timeout_s,
            clock=self._clock,
            on_connect=self._announce,
        )
        return conn

    def _filter(self) -> dict[str, Any]:
        """Our subscription; ``since`` reaches back to requests sent while we were away."""
        rules = self.settings.service
        margin = self.settings.relays.since_margin_s
        now = int(self._clock())
        since = max(self._last_created_at - margin, now - rules.created_at_window_s - margin)
        return {"kinds": [rules.request_kind], "#p": [self.service.pubkey], "since": since}

    def _spawn(self, coro: Any, group: set[asyncio.Task[Any]]) -> None:
        task = asyncio.ensure_future(coro)
        group.add(task)
        task.add_done_callback(group.discard)

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
        last = await self.db.run(repository.last_request_created_at)
        self._last_created_at = last or 0
        self._accepting = True
        await self.opener.open([], int(self._clock()))  # start the worker now, not on the first request
        self._spawn(self._open_stage(), self._tasks)
        self._spawn(self._commit_stage(), self._tasks)
        self._spawn(self.mail.run(self._mail_stopping), self._tasks)
        self._spawn(self._retry_replies(), self._tasks)
        self._spawn(self.retention.run(), self._tasks)  # issue 15
        if self.notifier.watchdog_interval_s:
            self._spawn(self._watchdog(self.notifier.watchdog_interval_s), self._tasks)
        await self.reload_relays()
        self.notifier.notify("READY=1", f"STATUS=serving as {self.service.pubkey[:16]}")
        log.info("sigit-dvm serving as %s on %d relay(s)", self.service.pubkey, len(self.pool.urls))

    def _lock_database(self) -> None:
        """One daemon per database: a second one would take over the first one's mail claims."""
        path = self.db.path.with_name(self.db.path.name + ".lock")
        self._lock_file = path.open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise DVMError(f"another sigit-dvm is already running on {self.db.path}") from exc

    async def reload_relays(self) -> None:
        urls = load_relays(self.settings.path(self.settings.relays.relays_file))
        added, removed = await self.pool.update(urls)
        self.notifier.notify(f"STATUS=relays {len(self.pool.urls)} (+{len(added)} -{len(removed)})")

    def request_stop(self) -> None:
        if self._stopping.is_set():
            log.warning("second stop request: cancelling in-flight work")
            for task in [*self._tasks, *self._publishing]:
                task.cancel()
        self._stopping.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, then shut down in order. SIGHUP reloads relays."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self._reload_logged(), self._tasks))
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _reload_logged(self) -> None:
        try:
            await self.reload_relays()
        except DVMError as exc:
            log.error("SIGHUP: relays not reloaded: %s", exc)

    async def shutdown(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self.health is not None:  # issue 15: /readyz fails from now on
            self.health.stopping()
        self._stopping.set()
        self._accepting = False
        timeout = self.settings.daemon.drain_timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), timeout)
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=timeout)
        self._mail_stopping.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._publishing, return_exceptions=True)
        if self.db.is_open:
            await self.writebehind.close()
        await asyncio.to_thread(self.opener.close)
        await self.pool.close()
        await self.backend.close()
        if self.db.is_open:
            await self.db.close()
        if getattr(self, "_lock_file", None) is not None:
            self._lock_file.close()  # releases the flock
        if self.health is not None:  # issue 15
            await self.health.close()
        log.info("sigit-dvm stopped after %d request(s)", self.handled)

    async def _drained(self) -> None:
        while not self.intake.empty() or self._busy:
            await asyncio.sleep(0.01)

    async def _watchdog(self, interval_s: float) -> None:
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

    # --- intake ------------------------------------------------------------------------------

    async def _on_event(self, raw: dict[str, Any], relay: str) -> None:
        if not self._accepting:
            return  # not marked seen: a restart's subscription fetches it again
        try:
            event = parse_event(raw, DEFAULT_LIMITS)
        except NostrError as exc:
            log.debug("dropped malformed event from %s: %s", relay, exc)
            return
        # Ids enter _seen only once verified and decided, so a forged copy of an event (same id,
        # bad signature or content) cannot shadow the genuine one; queued copies are compared as
        # whole events for the same reason.
        if event.id in self._seen or event in self._queued:
            return
        if not addressed_to(event, self.service.pubkey, self.service.rules.intake):
            return
        self._queued.add(event)
        await self.intake.put(_Item(event, time.monotonic(), relay))

    async def _open_stage(self) -> None:
        """Stage 1: take what is queued (up to a batch); a batch of ``WORKER_MIN_BATCH`` or more is
        opened in the worker process, a smaller one later in the database call."""
        batch_max = max(1, self.settings.store.batch_max)
        while True:
            items = [await self.intake.get()]
            self._busy += 1
            while len(items) < batch_max and not self.intake.empty():
                items.append(self.intake.get_nowait())
            now = int(self._clock())
            opened: Opened | None = None
            if len(items) >= WORKER_MIN_BATCH:
                try:
                    opened = await self.opener.open([item.event for item in items], now)
                except Exception as exc:  # a dead worker: this batch is opened inline instead
                    log.error("opening worker failed (%s); opening inline", type(exc).__name__)
            await self._opened.put((items, opened, now))

    async def _commit_stage(self) -> None:
        """Stage 2: decide a batch in one transaction, while the worker may be opening the next."""
        batch_max = max(1, self.settings.store.batch_max)
        while True:
            items, opened, now = await self._opened.get()
            parts = [(items, opened)]
            # Batches opened while the previous commit ran share this one (group commit): a commit
            # of one request writes about 20 pages to the WAL, one of many about one per request.
            while not self._opened.empty() and len(items) < batch_max:
                more, more_opened, now = self._opened.get_nowait()
                parts.append((more, more_opened))
                items = [*items, *more]
            try:
                await self._decide(parts, now)
                self._failures = 0
            except Exception as exc:  # locked or full database, I/O error: nothing was committed
                self.metrics.batch_failed()  # issue 15
                self._failures += 1
                delay = self._retry_delay(self._failures)
                log.error(
                    "batch of %d request(s) failed (%s: %s); retrying in %.1f s",
                    len(items),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                self._spawn(self._requeue(items, delay), self._tasks)
            finally:
                self._busy -= len(parts)

    def _retry_delay(self, failures: int) -> float:
        delays = self._retry_backoff.delays()
        delay = next(delays)
        for _ in range(min(failures, 16) - 1):
            delay = next(delays)
        return delay

    async def _requeue(self, items: list[_Item], delay: float) -> None:
        """Put a failed batch back after ``delay``: a database error is retried, never dropped."""
        await asyncio.sleep(delay)
        for item in items:
            await self.intake.put(item)

    async def _decide(self, parts: list[tuple[list[_Item], Opened | None]], now: int) -> None:
        """Decide batches in one transaction; those not opened by the worker are opened first, in
        the same database call."""
        along = self.writebehind.take()  # bookkeeping learnt since the last commit rides along

        def open_and_decide(conn: sqlite3.Connection) -> list[tuple[Incoming | None, Handled | Exception]]:
            opened: Opened = []
            for part_items, part_opened in parts:
                if part_opened is None:
                    opened.extend(self.service.open_events([item.event for item in part_items], now))
                else:
                    opened.extend(part_opened)
            return self.service.handle_opened(conn, opened, now, self.limiter, along)

        items = [item for part_items, _ in parts for item in part_items]
        try:
            results = await self.db.run(open_and_decide)
        except BaseException:
            if along is not None:  # rolled back with the batch: it waits for the next transaction
                self.writebehind.add(along)
            raise
        mails: list[OutboxMail] = []
        replies: list[repository.PendingReply] = []
        for item, (incoming, result) in zip(items, results, strict=True):
            latency_ms = (time.monotonic() - item.received) * 1000
            self._queued.discard(item.event)
            if incoming is None:
                self.metrics.dropped_event()  # issue 15
                log.info("dropped event %s from %s: %s", item.event.id[:12], item.relay, result)
                continue
            if isinstance(result, Exception):
                log.error("request %s failed: %s", item.event.id[:12], type(result).__name__)
                continue
            self._seen[item.event.id] = None
            if len(self._seen) > SEEN_CAPACITY:
                self._seen.popitem(last=False)
            self.handled += 1
            self._last_created_at = max(self._last_created_at, item.event.created_at)
            mails.extend(result.claimed_mails)
            self._log_request(item, incoming, result, latency_ms)
            replies.append(repository.PendingReply(result.event_id, result.reply_id, result.reply_event, 0))
        if replies:
            self._spawn(self._publish(replies), self._publishing)
        self.mail.submit(mails)

    def _log_request(self, item: _Item, incoming: Incoming, result: Handled, latency_ms: float) -> None:
        fields = {
            "event": item.event.id,
            "method": incoming.method or "-",
            "outcome": result.outcome,
            "replayed": result.replayed,
            "latency_ms": round(latency_ms, 2),
            "relay": item.relay,
        }
        log.info(
            "request %s method=%s outcome=%s%s latency_ms=%.1f",
            item.event.id[:12],
            fields["method"],
            result.outcome,
            " (replayed)" if result.replayed else "",
            latency_ms,
            extra={"fields": fields},
        )
        self.metrics.request(
            incoming.method or "-", result.outcome, result.replayed, latency_ms / 1000
        )  # issue 15

    # --- replies -----------------------------------------------------------------------------

    async def _publish(self, replies: list[repository.PendingReply]) -> None:
        """Publish replies to every relay; the outcomes go to the write-behind (see there)."""
        started = time.monotonic()  # issue 15
        results = await asyncio.gather(*(self.pool.publish_raw(r.reply_id, r.reply_event) for r in replies))
        self.metrics.replies_published(  # issue 15: per relay; the time is until all answered
            [[(r.relay, r.accepted, r.message) for r in outcome] for outcome in results],
            time.monotonic() - started,
        )
        now = int(self._clock())
        published: list[tuple[str, int]] = []
        failed: list[tuple[str, int]] = []
        for reply, outcome in zip(replies, results, strict=True):
            if any(r.accepted for r in outcome):
                published.append((reply.event_id, now))
                continue
            failed.append((reply.event_id, now + int(self._publish_delay(reply.attempts))))
            reasons = "; ".join(f"{r.relay}: {r.message}" for r in outcome) or "no relays"
            log.warning("reply to %s not published yet (%s)", reply.event_id[:12], reasons[:300])
        self.writebehind.add(partial(repository.mark_publication, published=published, failed=failed))

    def _publish_delay(self, attempts: int) -> float:
        delays = self._publish_backoff.delays()
        delay = next(delays)
        for _ in range(attempts):
            delay = next(delays)
        return delay

    async def _retry_replies(self) -> None:
        while True:
            try:
                now = int(self._clock())
                due = await self.db.run(partial(repository.due_replies, now=now, limit=PUBLISH_BATCH))
                if due and self.pool.connected:
                    await self._publish(due)
            except Exception:
                log.exception("reply retry pass failed")
            await asyncio.sleep(1.0)

    async def _announce(self, conn: RelayConnection) -> None:
        """Publish the NIP-89 announcement to a relay each time it (re)connects."""
        self.metrics.relay_connected(conn.url)  # issue 15
        d = self.settings.daemon
        event = announcement(self.secrets.key, self.service.rules.intake, d.name, d.about, int(self._clock()))
        result = await conn.publish(event)
        if not result.accepted:
            log.warning("announcement refused by %s: %s", conn.url, result.message)

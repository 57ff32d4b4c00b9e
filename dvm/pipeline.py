"""The request path: intake -> open -> commit -> results, one stage each, in this order.

1. **Intake** (:meth:`Pipeline.submit`): a relay connection hands over a raw event. It is parsed,
   dropped if it is not addressed to us or was already decided in this run, and dropped as junk
   unless its recomputed id carries the proof of work it commits to (a hash, no signature:
   :func:`~dvm.protocol.intake.paid_work`), so no junk ever waits in the queue or reaches the
   worker. It is left unopened if it is another daemon's to decide (several daemons:
   ``dvm.ownership``). The rest goes on a bounded queue (a full queue stops that relay's reader:
   back-pressure, not memory growth) ordered by the work each event committed to, then by
   arrival: a request that paid its method's price passes one that paid only the lowest.
2. **Open** (:meth:`Pipeline._open_stage`): whatever is queued (up to ``batch_max``) is verified,
   decrypted and decoded by the :class:`~dvm.opener.Opener`: in its worker process on the other
   core when the batch is large enough, inline otherwise.
3. **Commit** (:meth:`Pipeline._commit_stage`): batches opened while the previous commit ran are
   taken together (group commit), keys over their request budget are dropped, and the rest is
   decided and written by :meth:`dvm.service.AccountService.commit` in ONE database call and
   transaction, each request in its own savepoint. Reply marks from the write-behind ride along.
   A failed transaction (locked or full database) commits nothing; its events are queued again
   after a back-off, never dropped. Requests refused at intake (stale, undecodable, below their
   method's PoW) are not committed: they are answered from memory while the global refusal
   budget lasts, silently dropped after that (cost before work: no row, no flood of replies).
4. **Results**: each answer is logged and remembered (a copy from another relay is dropped at
   intake), and the batch's answers go to ``on_answered``, which the daemon wires to the reply
   publisher and the mail worker.

The database call runs on the event loop's thread (``dvm.store.database`` says why), so the
stages are coroutines on one loop: the commit of one batch overlaps only the worker's opening of
the next.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from dvm.backoff import Backoff
from dvm.errors import NostrError, StaleEvent, Unopenable
from dvm.metrics import Metrics
from dvm.nostr.event import DEFAULT_LIMITS, Event, parse_event
from dvm.opener import Opened, Opener
from dvm.protocol.intake import Incoming, addressed_to, paid_work
from dvm.ratelimit import KeyRateLimiter
from dvm.service import AccountService, Answer
from dvm.store import repository
from dvm.store.database import Store, unavailable
from dvm.store.writebehind import WriteBehind

log = logging.getLogger("sigit.pipeline")

SEEN_CAPACITY = 100_000
FAILED_BATCH_BACKOFF = Backoff(0.5, 10.0)  # a failing database is retried at least every 10 s


@dataclass(frozen=True, slots=True)
class Queued:
    """An event waiting in the pipeline, with when and where it came in, and the proof of work
    it committed to (its place in the queue)."""

    event: Event
    received: float  # monotonic
    relay: str
    work: int = 0


Waiting = tuple[int, int, Queued]
"""A queued event's place: minus the PoW it committed to, then its arrival number (ties are
FIFO, and two entries never compare their events)."""


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """What the pipeline holds and has done, for tests, metrics and the drain at shutdown."""

    queued: int  # waiting to be opened
    in_progress: int  # batches taken and not yet committed
    remembered: int  # decided event ids kept to drop copies (within the window, SEEN_CAPACITY at most)
    handled: int  # requests answered in this run
    failures: int  # consecutive failed commits (0 when the last one went through)
    last_answered_at: int  # our clock when the latest request was answered (a restart's catch-up)


class Pipeline:
    def __init__(
        self,
        service: AccountService,
        db: Store,
        opener: Opener,
        writebehind: WriteBehind,
        limiter: KeyRateLimiter,
        refusals: KeyRateLimiter,
        on_answered: Callable[[list[Answer]], None],
        *,
        batch_max: int,
        max_queued: int,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        owner: Callable[[Event, str], bool] | None = None,
    ) -> None:
        self.service = service
        self.owner = owner  # several daemons: False for another one's event (dvm.ownership)
        self.db = db
        self.opener = opener
        self.writebehind = writebehind
        self.limiter = limiter
        self.refusals = refusals
        self.on_answered = on_answered
        self.batch_max = max(1, batch_max)
        self._clock = clock
        self.metrics = metrics or Metrics()
        self._queue: asyncio.PriorityQueue[Waiting] = asyncio.PriorityQueue(maxsize=max_queued)
        self._arrivals = itertools.count()
        self._opened: asyncio.Queue[tuple[list[Queued], Opened, int]] = asyncio.Queue(maxsize=2)
        # Decided event ids, each with the time past which a copy is stale anyway (created_at +
        # the window): bounded by that time and by SEEN_CAPACITY, oldest decided first.
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._queued: set[Event] = set()  # events waiting (bounded by the queue's size)
        self._accepting = False
        self._in_progress = 0
        self._failures = 0
        self._handled = 0
        self._newest = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.broken = ""  # why a stage stopped, if one did (a bug)
        self.on_broken: Callable[[], None] | None = None

    @property
    def stats(self) -> PipelineStats:
        return PipelineStats(
            self._queue.qsize(),
            self._in_progress,
            len(self._seen),
            self._handled,
            self._failures,
            self._newest,
        )

    @property
    def max_queued(self) -> int:
        return self._queue.maxsize

    def start(self, last_answered_at: int = 0) -> None:
        """Serve; ``last_answered_at`` is when the store last answered a request (our clock)."""
        self._newest = max(self._newest, last_answered_at)
        self._accepting = True
        for name, stage in (("open", self._open_stage()), ("commit", self._commit_stage())):
            task = self._spawn(stage)
            task.add_done_callback(partial(self._stage_ended, name))

    def _stage_ended(self, name: str, task: asyncio.Task[None]) -> None:
        """A stage loops until cancelled; one that ended otherwise (a bug) serves no request
        again, so the daemon is told (``on_broken``) rather than staying up, deaf."""
        if task.cancelled():
            return
        exc = task.exception()
        why = f"{type(exc).__name__}: {exc}" if exc is not None else "it returned"
        self.broken = f"the {name} stage stopped ({why})"
        log.critical("%s", self.broken, exc_info=exc)
        if self.on_broken is not None:
            self.on_broken()

    def stop_intake(self) -> None:
        """Take no more events; those not taken are fetched again by the next run's subscription."""
        self._accepting = False

    async def drain(self) -> None:
        """Return once everything taken in has been committed (or failed and been queued again),
        or at once if a stage stopped (nothing more will be)."""
        while (not self._queue.empty() or self._in_progress) and not self.broken:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- 1. intake ---------------------------------------------------------------------------

    async def submit(self, raw: dict[str, Any], relay: str, *, taken_over: bool = False) -> None:
        """Take one event as a relay sent it; waits while the queue is full (back-pressure).
        ``taken_over``: parked as another daemon's, which did not decide it (``dvm.ownership``)."""
        if not self._accepting:
            return  # not remembered: a restart's subscription fetches it again
        try:
            event = parse_event(raw, DEFAULT_LIMITS)
        except NostrError as exc:
            log.debug("dropped malformed event from %s: %s", relay, exc)
            return
        # Ids are remembered only once verified and decided, so a forged copy of an event (same
        # id, bad signature or content) cannot shadow the genuine one; queued copies are compared
        # as whole events for the same reason.
        if event.id in self._seen or event in self._queued:
            return
        if not addressed_to(event, self.service.pubkey, self.service.rules.intake):
            return
        try:
            work = paid_work(event, self.service.rules.intake)
        except NostrError as exc:  # a forged id or no real work: junk, dropped before any cost
            self.metrics.dropped_event()
            log.debug("dropped junk from %s: %s", relay, exc)
            return
        if self.owner is not None and not taken_over and not self.owner(event, relay):
            return  # another live daemon's: parked unopened, handed back if it never decides it
        self._queued.add(event)
        await self._enqueue(Queued(event, time.monotonic(), relay, work))

    async def _enqueue(self, item: Queued) -> None:
        await self._queue.put((-item.work, next(self._arrivals), item))

    # --- 2. open -----------------------------------------------------------------------------

    async def _open_stage(self) -> None:
        while True:
            items = [(await self._queue.get())[2]]
            self._in_progress += 1
            while len(items) < self.batch_max and not self._queue.empty():
                items.append(self._queue.get_nowait()[2])
            now = int(self._clock())
            # An event's own error comes back as its drop (open_batch); anything else is a bug of the
            # stage's, which stops it (see _stage_ended).
            opened = await self.opener.open([item.event for item in items], now)
            await self._opened.put((items, opened, now))

    # --- 3. commit ---------------------------------------------------------------------------

    async def _commit_stage(self) -> None:
        while True:
            items, opened, now = await self._opened.get()
            parts = 1
            # Batches opened while the previous commit ran share this one (group commit): a commit
            # of one request writes about 20 pages to the WAL, one of many about one per request.
            while not self._opened.empty() and len(items) < self.batch_max:
                more, more_opened, now = self._opened.get_nowait()
                items, opened, parts = [*items, *more], [*opened, *more_opened], parts + 1
            try:
                await self._commit(items, opened, now)
                self._failures = 0
            except Exception as exc:  # locked or full database, I/O error: nothing was committed
                self.metrics.batch_failed()
                self._failures += 1
                delay = FAILED_BATCH_BACKOFF.delay(min(self._failures, 16) - 1)
                expected = unavailable(exc)  # the store logs the outage once; a bug gets its traceback
                log.log(
                    logging.DEBUG if expected else logging.ERROR,
                    "batch of %d request(s) failed (%s: %s); retrying in %.1f s",
                    len(items),
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not expected,
                )
                self._spawn(self._requeue(items, delay))
            finally:
                self._in_progress -= parts

    async def _commit(self, items: list[Queued], opened: Opened, now: int) -> None:
        checked = [self._within_budget(o, now) for o in opened]
        requests = [o for o in checked if isinstance(o, Incoming) and o.request is not None]
        answers: Iterator[Answer | Exception] = iter(())
        if requests:  # a batch of junk and refusals costs no transaction
            along = self.writebehind.take()  # reply marks learnt since the last commit ride along
            commit = partial(self.service.commit, batch=requests, now=now, bookkeeping=along)
            try:
                answers = iter(await self.db.run(commit))
            except BaseException:
                self.writebehind.put_back(along)  # rolled back with the batch: next transaction
                raise
        # A stale copy of a request decided already (seen late from another relay, or by a daemon
        # that came back) gets the stored decision, not a stale_event next to it.
        stale = [o.event.id for o in checked if isinstance(o, Incoming) and isinstance(o.refusal, StaleEvent)]
        decided = await self.db.run(partial(repository.stored_replies, event_ids=stale)) if stale else {}
        results: list[Answer | Exception] = []
        for o in checked:
            if not isinstance(o, Incoming):
                results.append(o)
            elif o.request is None:
                stored = decided.get(o.event.id)
                results.append(self.service.replay(o, stored) if stored else self.service.refuse(o, now))
            else:
                results.append(next(answers))
        self._hand_out(items, checked, results, now)

    def _within_budget(self, opened: Incoming | NostrError, now: int) -> Incoming | NostrError:
        """Keys over the per-key budget, and refusals over the global refusal budget, are dropped
        like forged events (no answer, no cost)."""
        if not isinstance(opened, Incoming):
            return opened
        if not self.limiter.allow(opened.event.pubkey, now):
            return NostrError("over the per-key request limit")
        # Only a refusal takes a token: ordinary requests must not spend the refusals' budget.
        if opened.request is None and not (self.refusals.burst > 0 and self.refusals.allow("", now)):
            return NostrError(f"refused ({opened.refusal}) over the refusal reply budget")
        return opened

    async def _requeue(self, items: list[Queued], delay: float) -> None:
        """Put a failed batch back after ``delay``: a database error is retried, never dropped."""
        await asyncio.sleep(delay)
        for item in items:  # behind what came meanwhile at the same price: they were not refused
            await self._enqueue(item)

    # --- 4. results --------------------------------------------------------------------------

    def _hand_out(
        self,
        items: list[Queued],
        opened: list[Incoming | NostrError],
        results: list[Answer | Exception],
        now: int,
    ) -> None:
        answered: list[Answer] = []
        for item, incoming, result in zip(items, opened, results, strict=True):
            self._queued.discard(item.event)
            if not isinstance(incoming, Incoming):
                self.metrics.dropped_event()
                level = logging.WARNING if isinstance(incoming, Unopenable) else logging.INFO
                log.log(level, "dropped event %s from %s: %s", item.event.id[:12], item.relay, incoming)
                continue
            if isinstance(result, Exception):  # rolled back alone, unanswered: a bug or a conflict
                log.error("request %s failed: %s", item.event.id[:12], type(result).__name__, exc_info=result)
                continue
            self._remember(item.event, now)
            self._handled += 1
            self._newest = max(self._newest, now)
            latency_s = time.monotonic() - item.received
            _log_answer(item, result, latency_s)
            self.metrics.request(result.method or "-", result.outcome, result.replayed, latency_s)
            answered.append(result)
        if answered:
            self.on_answered(answered)

    def _remember(self, event: Event, now: int) -> None:
        """Keep a decided id to drop its copies, and forget the ids whose copies intake refuses
        anyway (created_at outside the window). Ids leave in the order they were decided, so one
        dated in the future holds those after it for at most two windows."""
        self._seen[event.id] = event.created_at + self.service.rules.intake.created_at_window_s
        while self._seen and (len(self._seen) > SEEN_CAPACITY or next(iter(self._seen.values())) < now):
            self._seen.popitem(last=False)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _log_answer(item: Queued, answer: Answer, latency_s: float) -> None:
    if not log.isEnabledFor(logging.INFO):  # its fields cost more than the check, every request
        return
    latency_ms = latency_s * 1000
    fields = {
        "event": item.event.id,
        "method": answer.method or "-",
        "outcome": answer.outcome,
        "replayed": answer.replayed,
        "latency_ms": round(latency_ms, 2),
        "relay": item.relay,
    }
    log.info(
        "request %s method=%s outcome=%s%s latency_ms=%.1f",
        item.event.id[:12],
        fields["method"],
        answer.outcome,
        " (replayed)" if answer.replayed else "",
        latency_ms,
        extra={"fields": fields},
    )

"""An optional HTTP listener for operators: ``/healthz``, ``/readyz`` and ``/metrics``.

Off unless ``health.listen`` is set; on 127.0.0.1 unless a host is given. The server is a small
HTTP/1.1 responder on the event loop (asyncio streams; ``prometheus_client`` writes
``/metrics``): no thread, a bounded number of connections (``health.max_connections``) and a
deadline per request (``health.request_timeout_s``), so idle or slow clients cannot pile up
threads or sockets. A monitor task evaluates the readiness checks it is given (the database,
relays, mail) and refreshes the sampled gauges every ``health.probe_interval_s``; requests only
read the last results.

- ``/healthz``: 200 while the monitor runs on time (liveness), else 503; a blocked event loop
  does not answer at all, which a probe's timeout reports the same way.
- ``/readyz``: 200 when every check passes, else 503; a line per check either way.
- ``/metrics``: the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dvm.config import HealthSettings, listen_address
from dvm.errors import DVMError
from dvm.metrics import Metrics
from dvm.outage import one_line
from dvm.store.database import DATABASE_ERRORS, Store, immediate

log = logging.getLogger("sigit.health")

Check = Callable[[], Awaitable[str]]
"""A readiness check: '' when it passes, else why not (one line, for /readyz)."""
STALL_FACTOR = 3  # /healthz fails when the monitor is this many intervals late (plus a second)
MAIL_COUNT_PROBES = 12  # the outbox is counted by kind and status every 12th probe (a 60 s default):
# that count reads the whole mail table, the backlog query only the queued rows' index


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    lines: tuple[str, ...]
    at: float  # monotonic time of the evaluation


class Monitor:
    """Runs the checks and samplers on the event loop; keeps the last result for the server."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        samplers: Iterable[Callable[[], Awaitable[None]]],
        metrics: Metrics,
        interval_s: float,
    ) -> None:
        self.checks = dict(checks)
        self.samplers = list(samplers)
        self.metrics = metrics
        self.interval_s = interval_s
        self.stopping = False
        self.last = Readiness(False, ("starting",), time.monotonic())

    async def evaluate(self) -> Readiness:
        for sample in self.samplers:
            try:
                await sample()
            except Exception as exc:  # a sampler failing must not stop readiness
                log.debug("metrics sampler failed: %s", exc)
        lines, ready = [], not self.stopping
        for name, check in self.checks.items():
            try:
                problem = await check()
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            problem = one_line(problem)  # /readyz is a line per check
            self.metrics.check_ok.labels(name).set(0 if problem else 1)
            lines.append(f"{name}: {problem or 'ok'}")
            ready = ready and not problem
        if self.stopping:
            lines.insert(0, "stopping")
        self.metrics.ready.set(1 if ready else 0)
        self.last = Readiness(ready, tuple(lines), time.monotonic())
        return self.last

    async def run(self) -> None:
        while True:
            await self.evaluate()
            await asyncio.sleep(self.interval_s)

    def alive(self) -> bool:
        return time.monotonic() - self.last.at < STALL_FACTOR * self.interval_s + 1.0


class HealthServer:
    """The listener, on the event loop: ``start`` binds (a clear error if it cannot), ``close``
    stops it.

    Each connection is one request and one answer (``Connection: close``). At most
    ``max_connections`` are served at once; one more is closed at once, unanswered. A request
    must arrive whole within ``request_timeout_s`` and its answer be taken within as long, so
    clients that connect and stay silent (or read nothing) hold a slot for that long at most and
    cost no thread at all: 300 half-sent requests are 300 sockets, most of them closed at once.
    """

    def __init__(
        self,
        address: tuple[str, int],
        monitor: Monitor,
        metrics: Metrics,
        *,
        max_connections: int = 16,
        request_timeout_s: float = 5.0,
    ) -> None:
        self.address = address
        self.monitor = monitor
        self.metrics = metrics
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.active = 0  # connections being served now
        self.refused = 0  # connections closed unanswered: over the limit
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, port = self.address
        try:
            self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            raise DVMError(f"health.listen {host}:{port}: {exc.strerror}") from exc
        log.info("health and metrics on http://%s:%d/ (healthz, readyz, metrics)", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        self.active += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        answered = False
        try:
            async with asyncio.timeout(self.request_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
                status, headers, body = self.answer(head)
                writer.write(_response(status, headers, body))
                await writer.drain()
                answered = True
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a slow, silent, oversized or vanished client: nothing more for it
        finally:
            self.active -= 1
            if task is not None:
                self._handlers.discard(task)
            if answered:
                writer.close()  # the answer is written out; then the socket closes
            else:
                writer.transport.abort()  # drop whatever it did not take

    def answer(self, head: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status, headers and body for a request's head (its request line and headers)."""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", _TEXT, b"bad request\n"
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", [*_TEXT, ("Allow", "GET, HEAD")], b"only GET and HEAD\n"
        path = target.split("?", 1)[0]
        if path == "/metrics":
            body = generate_latest(self.metrics.registry)
            return "200 OK", [("Content-Type", CONTENT_TYPE_LATEST)], b"" if method == "HEAD" else body
        if path == "/healthz":
            alive = self.monitor.alive()
            return _status(alive), _TEXT, b"ok\n" if alive else b"event loop stalled\n"
        if path == "/readyz":
            last = self.monitor.last
            return _status(last.ready), _TEXT, "".join(f"{line}\n" for line in last.lines).encode()
        return "404 Not Found", _TEXT, b"not found: try /healthz, /readyz or /metrics\n"


MAX_REQUEST_BYTES = 8192
"""The longest request head (request line and headers) read; a longer one is not answered."""
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def _status(ok: bool) -> str:
    return "200 OK" if ok else "503 Service Unavailable"


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


# --- the daemon's checks and samplers ---------------------------------------------------------


def database_probe(db: Store) -> Check:
    """Writable: the file is still there and a write lock can be taken (within the daemon's wait)."""

    path = getattr(db, "path", None)  # SQLite's file; PostgreSQL has none

    def probe(conn: sqlite3.Connection) -> str:
        if path is not None and not path.exists():
            return f"{path} is gone"
        try:
            with immediate(conn, keyed=True):  # PostgreSQL: what a decision takes (not the CLI's lock)
                pass
        except DATABASE_ERRORS as exc:
            return f"not writable: {exc}"
        return ""

    async def check() -> str:
        return await db.run(probe)

    return check


class Health:
    """What the daemon builds (only when ``health.listen`` is set): monitor, server, checks."""

    def __init__(self, settings: HealthSettings, monitor: Monitor, address: tuple[str, int]) -> None:
        self.settings = settings
        self.monitor = monitor
        self.server = HealthServer(
            address,
            monitor,
            monitor.metrics,
            max_connections=settings.max_connections,
            request_timeout_s=settings.request_timeout_s,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        await self.monitor.evaluate()
        self._task = asyncio.ensure_future(self.monitor.run())

    def stopping(self) -> None:
        """Shutdown began: /readyz fails from now on (a load balancer stops sending)."""
        self.monitor.stopping = True
        self.monitor.last = Readiness(False, ("stopping",), time.monotonic())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.server.close()


def for_daemon(daemon: Any, metrics: Metrics) -> Health | None:
    """The daemon's health listener, or None when ``health.listen`` is empty.

    ``daemon`` gives ``settings``, ``db``, ``pool`` (``urls``, ``connected``) and ``pipeline``
    (``stats.queued``): this is the one place that reads them."""
    settings = daemon.settings
    address = listen_address(settings.health)
    if address is None:
        return None
    db: Store = daemon.db
    backlog_max_s = settings.health.max_mail_backlog_s
    private = settings.service.private_mode  # mail kinds would tell accounts apart on a scrape
    count_every_s = MAIL_COUNT_PROBES * settings.health.probe_interval_s
    state = {"oldest_queued_age_s": 0.0, "counted_at": -count_every_s}

    async def sample_loop() -> None:
        metrics.relays_connected.set(len(daemon.pool.connected))
        metrics.relays_configured.set(len(daemon.pool.urls))
        metrics.intake_depth.set(daemon.pipeline.stats.queued)
        path = getattr(db, "path", None)
        if path is not None:  # SQLite; PostgreSQL's size is its server's to report
            size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
            metrics.db_bytes.set(size)

    async def sample_mail() -> None:
        now = int(time.time())
        if time.monotonic() - state["counted_at"] >= count_every_s:
            metrics.mail_rows(await db.run(mail_counts), private=private)
            state["counted_at"] = time.monotonic()
        queued, oldest = await db.run(_mail_backlog)
        metrics.mail_backlog.set(queued)
        state["oldest_queued_age_s"] = 0.0 if oldest is None else max(0.0, float(now - oldest))
        metrics.mail_backlog_age.set(state["oldest_queued_age_s"])

    async def relays() -> str:
        connected = len(daemon.pool.connected)
        return "" if connected else f"no relay connected (of {len(daemon.pool.urls)})"

    async def mail() -> str:
        age = state["oldest_queued_age_s"]
        return (
            "" if age < backlog_max_s else f"oldest queued mail is {age:.0f} s old (limit {backlog_max_s} s)"
        )

    checks = {"database": database_probe(db), "relays": relays, "mail": mail}
    monitor = Monitor(checks, [sample_loop, sample_mail], metrics, settings.health.probe_interval_s)
    return Health(settings.health, monitor, address)


def mail_counts(conn: sqlite3.Connection) -> list[tuple[str, str, int, int]]:
    rows = conn.execute(
        "SELECT kind, status, count(*), count(*) FILTER (WHERE attempts > 1) FROM mail GROUP BY kind, status"
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def _mail_backlog(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """Queued mail and the oldest one's created_at (through the partial index on queued rows)."""
    row = conn.execute("SELECT count(*), min(created_at) FROM mail WHERE status = 'queued'").fetchone()
    return int(row[0]), row[1]

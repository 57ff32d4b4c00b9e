"""An optional HTTP listener for operators: ``/healthz``, ``/readyz`` and ``/metrics``.

Off unless ``health.listen`` is set; on 127.0.0.1 unless a host is given. The server is the
standard library's WSGI server on a thread of its own, with ``prometheus_client``'s exposition
app for ``/metrics``; it never touches the daemon's state. A monitor task on the event loop
evaluates the readiness checks it is given (the database, relays, mail) and refreshes the
sampled gauges every ``health.probe_interval_s``; the thread only reads the last results.

- ``/healthz``: 200 while the event loop runs the monitor on time (liveness), else 503.
- ``/readyz``: 200 when every check passes, else 503; a line per check either way.
- ``/metrics``: the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from dvm.config import HealthSettings, listen_address
from dvm.errors import DVMError
from dvm.metrics import Metrics
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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the journal."""


class HealthServer:
    """The listener's thread. ``start`` binds (a clear error if it cannot), ``close`` stops it."""

    def __init__(self, address: tuple[str, int], monitor: Monitor, metrics: Metrics) -> None:
        self.address = address
        self.monitor = monitor
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port if self._server is not None else 0

    def start(self) -> None:
        host, port = self.address
        try:
            self._server = make_server(host, port, self.app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            raise DVMError(f"health.listen {host}:{port}: {exc.strerror}") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()
        log.info("health and metrics on http://%s:%d/ (healthz, readyz, metrics)", host, self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            alive = self.monitor.alive()
            return _text(start_response, alive, "ok\n" if alive else "event loop stalled\n")
        if path == "/readyz":
            last = self.monitor.last
            return _text(start_response, last.ready, "".join(f"{line}\n" for line in last.lines))
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /healthz, /readyz or /metrics\n"]


def _text(start_response: StartResponse, ok: bool, body: str) -> list[bytes]:
    data = body.encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


# --- the daemon's checks and samplers ---------------------------------------------------------


def database_probe(db: Store) -> Check:
    """Writable: the file is still there and a write lock can be taken (within the daemon's wait)."""

    path = getattr(db, "path", None)  # SQLite's file; PostgreSQL has none

    def probe(conn: sqlite3.Connection) -> str:
        if path is not None and not path.exists():
            return f"{path} is gone"
        try:
            with immediate(conn):
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
        self.server = HealthServer(address, monitor, monitor.metrics)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server.start()
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
        await asyncio.to_thread(self.server.close)


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
            metrics.mail_rows(await db.run(_mail_counts))
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


def _mail_counts(conn: sqlite3.Connection) -> list[tuple[str, str, int, int]]:
    rows = conn.execute(
        "SELECT kind, status, count(*), count(*) FILTER (WHERE attempts > 1) FROM mail GROUP BY kind, status"
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def _mail_backlog(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """Queued mail and the oldest one's created_at (through the partial index on queued rows)."""
    row = conn.execute("SELECT count(*), min(created_at) FROM mail WHERE status = 'queued'").fetchone()
    return int(row[0]), row[1]

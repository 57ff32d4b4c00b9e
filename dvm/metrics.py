"""The daemon's Prometheus metrics: one registry, the metric objects, and the small methods the
request path calls. Nothing here does I/O; ``dvm.health`` serves the registry and refreshes the
sampled gauges (relays, queue depth, mail backlog) from the event loop.

Label values are bounded: methods and outcomes come from the protocol's fixed lists (anything
else is counted as ``other``), relays from the operator's relays.toml, mail kinds from
``MailKind``. In private mode the mail kinds are not told apart (see :meth:`Metrics.mail_rows`).

Counters and histograms carry no ``_created`` samples (each came with a HELP line of its own
and doubled the exposition); the process's own figures (``process_*``: memory, CPU, open
files) and ``sigit_build_info`` (the version) are included.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from dvm import __version__
from dvm.errors import error_codes
from dvm.protocol.methods import Method

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DB_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_METHODS = frozenset(m.value for m in Method) | {"-"}
_OUTCOMES = frozenset(error_codes()) | {"ok"}


def private_kind(kind: str) -> str:
    """The ``kind`` label in private mode: ``code`` for every code mail, ``notice`` for the rest."""
    return "code" if kind.endswith("_code") else "notice"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._request_counters: dict[tuple[str, str, bool], Counter] = {}  # labelled children, by key
        self._publish_counters: dict[tuple[str, str], Counter] = {}
        ProcessCollector(registry=r)  # process_resident_memory_bytes, ..._cpu_seconds_total, ...
        self.build_info = Gauge(
            "sigit_build_info",
            "Always 1; the labels say which sigit-dvm runs (version), on which Python",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.requests = Counter(
            "sigit_requests",
            "Requests answered, by method and outcome",
            ["method", "outcome", "replayed"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "sigit_request_seconds",
            "From the relay's event to the committed decision",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.priced_requests = Counter(
            "sigit_priced_requests",
            "Requests answered pow_too_low with a busy domain's price (more than the method's minimum)",
            ["method"],
            registry=r,
        )
        self.dropped = Counter(
            "sigit_events_dropped",
            "Events dropped unanswered (malformed, forged, over the per-key limit)",
            registry=r,
        )
        self.left_to_owner = Counter(
            "sigit_requests_left_to_owner",
            "Requests another daemon owned, left unopened, by what became of them (PostgreSQL)",
            ["outcome"],
            registry=r,
        )
        self.batch_failures = Counter(
            "sigit_batch_failures", "Request batches the database refused (retried with backoff)", registry=r
        )
        self.reply_publish = Counter(
            "sigit_reply_publish",
            "Reply publications per relay: accepted, refused (the relay said no) or error (timeout, lost)",
            ["relay", "result"],
            registry=r,
        )
        self.reply_publish_seconds = Histogram(
            "sigit_reply_publish_seconds",
            "Time to publish a reply until every relay answered or timed out",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.relay_connects = Counter(
            "sigit_relay_connects", "Connections made to a relay", ["relay"], registry=r
        )
        self.relays_connected = Gauge("sigit_relays_connected", "Relays connected and subscribed", registry=r)
        self.relays_configured = Gauge("sigit_relays_configured", "Relays in relays.toml", registry=r)
        self.intake_depth = Gauge("sigit_intake_queue_depth", "Events waiting to be decided", registry=r)
        self.mail_outbox = Gauge(
            "sigit_mail_outbox",
            "Mail rows in the outbox by kind and status (sent and dead until retention deletes them)",
            ["kind", "status"],
            registry=r,
        )
        self.mail_retried = Gauge(
            "sigit_mail_retried",
            "Mail rows that needed more than one attempt, by kind and status",
            ["kind", "status"],
            registry=r,
        )
        self.mail_backlog = Gauge("sigit_mail_backlog", "Mail queued (waiting or being retried)", registry=r)
        self.mail_backlog_age = Gauge(
            "sigit_mail_backlog_age_seconds", "Age of the oldest queued mail (0 when none)", registry=r
        )
        self.db_call_seconds = Histogram(
            "sigit_database_call_seconds",
            "Time the event loop spent in one database call",
            buckets=DB_BUCKETS_S,
            registry=r,
        )
        self.db_bytes = Gauge("sigit_database_bytes", "Size of the database file and its WAL", registry=r)
        self.retention_deleted = Counter(
            "sigit_retention_deleted_rows", "Rows deleted by retention, by table", ["table"], registry=r
        )
        self.ready = Gauge("sigit_ready", "1 when /readyz answers 200", registry=r)
        self.check_ok = Gauge(
            "sigit_ready_check", "Each readiness check: 1 passing, 0 failing", ["check"], registry=r
        )

    # --- hooks the request path calls -------------------------------------------------------

    def request(self, method: str, outcome: str, replayed: bool, latency_s: float) -> None:
        key = (method, outcome, replayed)
        counter = self._request_counters.get(key)
        if counter is None:  # a labelled child per key, looked up once: every request counts here
            labels = (
                method if method in _METHODS else "other",
                outcome if outcome in _OUTCOMES else "other",
                "true" if replayed else "false",
            )
            counter = self._request_counters[key] = self.requests.labels(*labels)
        counter.inc()
        self.request_seconds.observe(latency_s)

    def priced(self, method: str) -> None:
        self.priced_requests.labels(method if method in _METHODS else "other").inc()

    def dropped_event(self) -> None:
        self.dropped.inc()

    def batch_failed(self) -> None:
        self.batch_failures.inc()

    def replies_published(self, results: Sequence[Sequence[tuple[str, bool, str]]], seconds: float) -> None:
        """``results``: per reply, ``(relay, accepted, message)`` per relay."""
        for outcome in results:
            self.reply_publish_seconds.observe(seconds)
            for relay, accepted, message in outcome:
                result = "accepted" if accepted else "error" if message.startswith("error:") else "refused"
                counter = self._publish_counters.get((relay, result))
                if counter is None:
                    counter = self._publish_counters[relay, result] = self.reply_publish.labels(relay, result)
                counter.inc()

    def relay_connected(self, relay: str) -> None:
        self.relay_connects.labels(relay).inc()

    def database_call(self, seconds: float) -> None:
        self.db_call_seconds.observe(seconds)

    def pruned(self, rows: dict[str, int]) -> None:
        for table, count in rows.items():
            self.retention_deleted.labels(table).inc(count)

    # --- sampled by dvm.health -------------------------------------------------------------

    def mail_rows(self, rows: Sequence[tuple[str, str, int, int]], *, private: bool = False) -> None:
        """``(kind, status, rows, retried)`` per kind and status, as counted in the outbox.

        ``private`` (private mode): not exported at all. A stranger's request for an address
        with an account mails a code and one for an address without none (a decoy), so any
        count of mail rows, by kind or grouped, would tell them apart on a scrape: the oracle
        private mode exists to close (issue 23). The backlog gauges stay: they show mail only for
        the moment it waits, and an operator needs them (docs/operations.md)."""
        self.mail_outbox.clear()
        self.mail_retried.clear()
        if private:
            return
        totals: dict[tuple[str, str], list[int]] = {}
        for kind, status, count, retried in rows:
            total = totals.setdefault((kind, status), [0, 0])
            total[0] += count
            total[1] += retried
        for (kind, status), (count, retried) in totals.items():
            self.mail_outbox.labels(kind, status).set(count)
            self.mail_retried.labels(kind, status).set(retried)

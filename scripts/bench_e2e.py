"""End to end through a local relay: requests/s and publish-to-reply latency.

A local relay and ``sigit-dvm run`` (a real process) on 127.0.0.1; CLIENTS websocket
connections send pre-built request_account events (own ephemeral key each, PoW 8 bits, NIP-44)
at a fixed total rate, each connection subscribed to the replies for its keys. Every rate runs
for SECONDS; the table shows achieved throughput and p50/p99 latency, so the saturation point is
where throughput stops following the offered rate and latency climbs. All three processes (relay,
daemon, load) share this machine's cores; the CPU columns say what each cost per request (user +
system time from /proc, the daemon with its opening worker).

Mail goes to .eml files on tmpfs: a stand-in for the SMTP server, which runs elsewhere in
production (section 4 measures SMTP); on this machine's disk each file costs 0.55 ms of CPU.
The daemon's database is on the disk, with its fsyncs. The relay is nostr-relay on its LMDB
storage, which costs it less than half the CPU per event of its default SQLite storage;
``SIGIT_BENCH_RELAY=sqlite`` measures with the default one, and ``SIGIT_BENCH_RELAY=rust`` on
rust-nostr's relay (in memory, 0.3-0.4 ms of CPU per request against nostr-relay's 1.5-2.1), so
the figures measure the daemon rather than the relay.

``SIGIT_BENCH_STORE=postgresql`` puts the daemon's database on a throwaway PostgreSQL cluster
(tests/support/postgres.py: fsync on, 127.0.0.1) instead of the SQLite file, and
``SIGIT_BENCH_DAEMONS=2`` (or 3) runs that many daemons on it, active-active: the same key and
code secret, all subscribed to the relay, so each request reaches all of them and its owner
(dvm.ownership) decides it. The CPU columns then show each daemon and the PostgreSQL server (the
postmaster and its backends). ``SIGIT_BENCH_LOCK_SAMPLE_MS=5`` samples ``pg_locks`` that often
during each rate's sending window and prints how often a transaction waited for an advisory lock
(a decision's keys, or the write lock) and for any lock (rows included); the sampling costs the
server CPU, so take CPU figures from runs without it.
Environment: SIGIT_BENCH_RATES (default 100,200,300), SIGIT_BENCH_SECONDS (default 8),
SIGIT_BENCH_RELAY (lmdb, sqlite or rust), SIGIT_BENCH_STORE (sqlite or postgresql),
SIGIT_BENCH_DAEMONS (default 1; more needs postgresql), SIGIT_BENCH_LOCK_SAMPLE_MS (default 0: off).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Container
from pathlib import Path

import psycopg
from websockets.asyncio.client import ClientConnection, connect

from dvm.demo.local import write_local_config
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages
from tests.support.postgres import Cluster, start_cluster
from tests.support.relay import LocalRelay, RustRelay, make_relay

CLIENTS = 8
POW_BITS = 8


def start_daemon(
    directory: Path,
    relay_url: str,
    mail_dir: Path,
    store_url: str = "",
    key: SecretKey | None = None,
    code_secret: bytes | None = None,
    log_level: str = "warning",
) -> tuple[subprocess.Popen[bytes], SecretKey]:
    """``sigit-dvm run`` on the SQLite file in ``directory`` or the database at ``store_url``;
    ``key`` and ``code_secret`` make it a twin of another daemon (active-active). Its log goes
    to ``directory/daemon.log``."""
    config, key = write_local_config(
        directory,
        [relay_url],
        25,
        key=key,
        overrides={
            "daemon": {"log_level": log_level},
            "store": {"url": store_url} if store_url else {},
            "service": {
                "pow_request_account_bits": POW_BITS,
                "max_codes_per_email_per_hour": 100000,
                "max_codes_per_domain_per_hour": 10_000_000,  # every address of the load shares one
                "max_codes_per_hour": 10_000_000,
            },
            "mail": {"backend": "file", "outbox_dir": str(mail_dir)},
        },
    )
    if code_secret is not None:
        (directory / "code.secret").write_bytes(code_secret)
    log = (directory / "daemon.log").open("wb")
    proc = subprocess.Popen(  # in its own directory: ``-m`` would put the caller's first on sys.path
        [sys.executable, "-m", "dvm.cli", "-c", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    return proc, key


RELAY_LABELS = {
    "lmdb": "nostr-relay (LMDB storage)",
    "sqlite": "nostr-relay (SQLite storage)",
    "rust": "rust-nostr's relay (in memory)",
}


def relay_label(name: str) -> str:
    return RELAY_LABELS.get(name, name)


def start_relay(directory: Path, name: str) -> LocalRelay | RustRelay:
    """The bench relay SIGIT_BENCH_RELAY names: ``lmdb`` or ``sqlite`` (nostr-relay's storage) or
    ``rust`` (rust-nostr's relay), started."""
    if name not in RELAY_LABELS:
        sys.exit(f"SIGIT_BENCH_RELAY={name}: one of {', '.join(RELAY_LABELS)}")
    return make_relay(directory, name).start()


def postmaster_pid(cluster: Cluster) -> int:
    """The PostgreSQL server's root process: its backends and helpers are its children."""
    return int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])


_SAMPLE = """
SELECT count(*) FILTER (WHERE locktype = 'advisory' AND NOT granted),
       count(*) FILTER (WHERE NOT granted),
       count(*) FILTER (WHERE locktype = 'advisory' AND granted),
       count(*) FILTER (WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2)
FROM pg_locks WHERE pid <> pg_backend_pid()
"""


class LockSampler:
    """Samples ``pg_locks`` every ``interval_s`` between ``start`` and ``end`` (perf_counter) on a
    thread of its own: the share of samples in which some transaction waited for an advisory lock,
    waited for any lock, or held an advisory lock."""

    def __init__(self, url: str, interval_s: float, start: float, end: float) -> None:
        self.url, self.interval_s, self.start, self.end = url, interval_s, start, end
        self.samples = [0, 0, 0, 0, 0]  # samples, advisory waits, any waits, advisory held, write lock waits
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while time.perf_counter() < self.start:
                time.sleep(0.005)
            while (now := time.perf_counter()) < self.end:
                adv, any_wait, held, write = conn.execute(_SAMPLE).fetchone()
                for i, hit in enumerate((True, adv > 0, any_wait > 0, held > 0, write > 0)):
                    self.samples[i] += int(hit)
                time.sleep(max(0.0, now + self.interval_s - time.perf_counter()))

    def result(self) -> dict:
        self.thread.join()
        n = self.samples[0] or 1
        return {
            "lock_samples": self.samples[0],
            "advisory_wait_pct": round(100 * self.samples[1] / n, 1),
            "lock_wait_pct": round(100 * self.samples[2] / n, 1),
            "advisory_held_pct": round(100 * self.samples[3] / n, 1),
            "write_lock_wait_pct": round(100 * self.samples[4] / n, 1),  # of the advisory waits
        }


def build_events(dvm: str, count: int) -> list[tuple[str, str, str]]:
    """(event id, requester pubkey, event JSON) for ``count`` signups."""
    now = int(time.time())
    out = []
    for i in range(count):
        client = Encryptor(SecretKey.generate())
        ev = build_request(
            client, dvm, "request_account", {"email": f"e2e{i}-{now}@example.org"}, now, pow_bits=POW_BITS
        )
        out.append((ev.id, ev.pubkey, ev.to_json()))
    return out


async def read_replies(ws: ClientConnection, sent: Container[str], got: dict[str, float]) -> None:
    """Stamp in ``got`` when each reply arrives: an event whose ``e`` tag names a request in ``sent``."""
    async for raw in ws:
        msg = messages.parse_relay_message(raw)
        if isinstance(msg, messages.EventMsg):
            for tag in msg.event.get("tags", []):
                if tag[:1] == ["e"] and tag[1] in sent and tag[1] not in got:
                    got[tag[1]] = time.perf_counter()


async def client(
    url: str,
    events: list[tuple[str, str, str]],
    start: float,
    step: float,
    offset: int,
    sent: dict,
    got: dict,
) -> None:
    async with connect(url, max_size=2**22) as ws:
        await ws.send(messages.req("replies", {"kinds": [6780], "#p": [pk for _, pk, _ in events]}))

        task = asyncio.create_task(read_replies(ws, sent, got))
        await asyncio.sleep(0.5)  # let the subscription settle before the clock starts
        for j, (event_id, _, raw) in enumerate(events):
            due = start + (offset + j * CLIENTS) * step
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[event_id] = time.perf_counter()
            await ws.send(messages.event_raw(raw))
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline and not all(e in got for e, _, _ in events):
            await asyncio.sleep(0.05)
        task.cancel()


def processes() -> tuple[dict[int, int], dict[int, int]]:
    """Every live process's parent and its user + system clock ticks, from /proc (Linux)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return parents, ticks


def cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants, from /proc (Linux); this process alone
    for its own pid (the relay and the daemon are its children)."""
    if root == os.getpid():
        own = os.times()
        return own.user + own.system
    parents, ticks = processes()
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


async def run_rate(
    url: str,
    dvm: str,
    rate: int,
    seconds: float,
    pids: dict[str, int],
    sample: tuple[str, float] | None = None,
) -> dict:
    count = int(rate * seconds)
    events = build_events(dvm, count)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    start = time.perf_counter() + 1.0
    step = 1.0 / rate
    shards = [events[i::CLIENTS] for i in range(CLIENTS)]
    sampler = LockSampler(sample[0], sample[1], start, start + seconds) if sample else None
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.gather(*(client(url, shard, start, step, i, sent, got) for i, shard in enumerate(shards)))
    cpu_ms = {
        f"cpu_ms_per_req_{name}": round((cpu_seconds(pid) - before[name]) * 1000 / count, 2)
        for name, pid in pids.items()
    }
    latencies = sorted((got[e] - sent[e]) * 1000 for e in sent if e in got)
    answered = len(latencies)
    span = (max(got.values()) - min(sent.values())) if got else float("inf")
    return {
        "offered_req_per_s": rate,
        "requests": count,
        "answered": answered,
        "achieved_req_per_s": round(answered / span, 1) if got else 0,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (answered - 1))], 1) if latencies else None,
        **cpu_ms,
        **(sampler.result() if sampler is not None else {}),
    }


def main() -> None:
    rates = [int(r) for r in os.environ.get("SIGIT_BENCH_RATES", "100,200,300").split(",")]
    seconds = float(os.environ.get("SIGIT_BENCH_SECONDS", "8"))
    storage = os.environ.get("SIGIT_BENCH_RELAY", "lmdb")
    store = os.environ.get("SIGIT_BENCH_STORE", "sqlite")
    count = int(os.environ.get("SIGIT_BENCH_DAEMONS", "1"))
    sample_ms = float(os.environ.get("SIGIT_BENCH_LOCK_SAMPLE_MS", "0"))
    if store not in ("sqlite", "postgresql"):
        sys.exit(f"SIGIT_BENCH_STORE={store}: sqlite or postgresql")
    if count > 1 and store != "postgresql":
        sys.exit("SIGIT_BENCH_DAEMONS > 1 needs SIGIT_BENCH_STORE=postgresql (one daemon per SQLite file)")
    results = []
    cluster = start_cluster() if store == "postgresql" else None
    if store == "postgresql" and cluster is None:
        sys.exit("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
    shm = Path("/dev/shm")  # a private temporary directory is made inside it
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as mail,
    ):
        directory = Path(tmp)
        relay = start_relay(directory / "relay", storage)
        store_url = cluster.new_database("bench") if cluster is not None else ""
        procs: list[subprocess.Popen[bytes]] = []
        try:
            key, secret = None, None
            for i in range(count):
                proc, key = start_daemon(
                    directory / f"dvm{i + 1}", relay.url, Path(mail) / str(i + 1), store_url, key, secret
                )
                secret = (directory / "dvm1" / "code.secret").read_bytes()
                procs.append(proc)
            assert key is not None
            time.sleep(2.0 if cluster is None else 3.0)
            for rate in rates:
                print(f"offering {rate} req/s for {seconds:.0f} s...", file=sys.stderr)
                assert relay.proc is not None
                pids = {"relay": relay.proc.pid}
                for i, proc in enumerate(procs):
                    pids["daemon" if count == 1 else f"daemon{i + 1}"] = proc.pid
                if cluster is not None:
                    pids["postgres"] = postmaster_pid(cluster)
                pids["load"] = os.getpid()
                sample = (store_url, sample_ms / 1000) if cluster is not None and sample_ms > 0 else None
                result = asyncio.run(run_rate(relay.url, key.pubkey_hex, rate, seconds, pids, sample))
                results.append({"relay": storage, "store": store, "daemons": count, **result})
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(20)
            relay.stop()
            if cluster is not None:
                cluster.stop()
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    print(
        f"end to end: request_account through {relay_label(storage)}, {count} daemon(s) on "
        f"{store}; CPU is ms per request"
    )
    names = [k.removeprefix("cpu_ms_per_req_") for k in results[0] if k.startswith("cpu_ms_per_req_")]
    sampled = "lock_samples" in results[0]
    print(
        f"{'offered':>8} {'achieved':>9} {'answered':>10} {'p50 ms':>8} {'p99 ms':>8} "
        + " ".join(f"{name + ' CPU':>12}" for name in names)
        + (
            f" {'adv. wait %':>11} {'(write lock)':>12} {'any wait %':>10} {'adv. held %':>11} {'samples':>7}"
            if sampled
            else ""
        )
    )
    for r in results:
        print(
            f"{r['offered_req_per_s']:8} {r['achieved_req_per_s']:9} {r['answered']:>5}/{r['requests']:<4} "
            f"{r['p50_ms']!s:>8} {r['p99_ms']!s:>8} "
            + " ".join(f"{r['cpu_ms_per_req_' + name]:12}" for name in names)
            + (
                f" {r['advisory_wait_pct']:11} {r['write_lock_wait_pct']:12} {r['lock_wait_pct']:10} "
                f"{r['advisory_held_pct']:11} "
                f"{r['lock_samples']:7}"
                if sampled
                else ""
            )
        )


if __name__ == "__main__":
    main()

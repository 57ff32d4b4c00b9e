"""End to end through a local nostr-relay: requests/s and publish-to-reply latency.

A local ``nostr-relay`` and ``sigit-dvm run`` (a real process) on 127.0.0.1; CLIENTS websocket
connections send pre-built request_account events (own ephemeral key each, PoW 8 bits, NIP-44)
at a fixed total rate, each connection subscribed to the replies for its keys. Every rate runs
for SECONDS; the table shows achieved throughput and p50/p99 latency, so the saturation point is
where throughput stops following the offered rate and latency climbs. All three processes (relay,
daemon, load) share this machine's cores; the CPU columns say what each cost per request (user +
system time from /proc, the daemon with its opening worker).

Mail goes to .eml files on tmpfs: a stand-in for the SMTP server, which runs elsewhere in
production (section 4 measures SMTP); on this machine's disk each file costs 0.55 ms of CPU.
The daemon's database is on the disk, with its fsyncs. The relay runs on nostr-relay's LMDB
storage, which costs it less than half the CPU per event of its default SQLite storage;
``SIGIT_BENCH_RELAY=sqlite`` measures with the default one.
Environment: SIGIT_BENCH_RATES (default 100,200,300), SIGIT_BENCH_SECONDS (default 8).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from dvm.demo.local import write_local_config
from dvm.demo.relay import LocalRelay
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages

CLIENTS = 8
POW_BITS = 8


def start_daemon(directory: Path, relay_url: str, mail_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config, key = write_local_config(
        directory,
        [relay_url],
        25,
        overrides={
            "daemon": {"log_level": "warning"},
            "service": {
                "pow_request_account_bits": POW_BITS,
                "max_codes_per_email_per_hour": 100000,
                "max_codes_per_domain_per_hour": 10_000_000,  # every address of the load shares one
                "max_codes_per_hour": 10_000_000,
            },
            "mail": {"backend": "file", "outbox_dir": str(mail_dir)},
        },
    )
    log = (directory / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvm.cli", "-c", str(config), "run"], stdout=log, stderr=subprocess.STDOUT
    )
    return proc, key.pubkey_hex


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

        async def reader() -> None:
            async for raw in ws:
                msg = messages.parse_relay_message(raw)
                if isinstance(msg, messages.EventMsg):
                    for tag in msg.event.get("tags", []):
                        if tag[:1] == ["e"] and tag[1] in sent and tag[1] not in got:
                            got[tag[1]] = time.perf_counter()

        task = asyncio.create_task(reader())
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


def cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants, from /proc (Linux); this process alone
    for its own pid (the relay and the daemon are its children)."""
    if root == os.getpid():
        own = os.times()
        return own.user + own.system
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
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


async def run_rate(url: str, dvm: str, rate: int, seconds: float, pids: dict[str, int]) -> dict:
    count = int(rate * seconds)
    events = build_events(dvm, count)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    start = time.perf_counter() + 1.0
    step = 1.0 / rate
    shards = [events[i::CLIENTS] for i in range(CLIENTS)]
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
    }


def main() -> None:
    rates = [int(r) for r in os.environ.get("SIGIT_BENCH_RATES", "100,200,300").split(",")]
    seconds = float(os.environ.get("SIGIT_BENCH_SECONDS", "8"))
    storage = os.environ.get("SIGIT_BENCH_RELAY", "lmdb")
    results = []
    shm = Path("/dev/shm")  # a private temporary directory is made inside it
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as mail,
    ):
        directory = Path(tmp)
        relay = LocalRelay(directory / "relay", storage=storage).start()
        proc, dvm = start_daemon(directory, relay.url, Path(mail))
        try:
            time.sleep(2.0)
            for rate in rates:
                print(f"offering {rate} req/s for {seconds:.0f} s...", file=sys.stderr)
                assert relay.proc is not None
                pids = {"relay": relay.proc.pid, "daemon": proc.pid, "load": os.getpid()}
                result = asyncio.run(run_rate(relay.url, dvm, rate, seconds, pids))
                results.append({"relay_storage": storage, **result})
        finally:
            proc.terminate()
            proc.wait(20)
            relay.stop()
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    print(f"end to end: request_account through nostr-relay ({storage} storage); CPU is ms per request")
    print(
        f"{'offered':>8} {'achieved':>9} {'answered':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'relay CPU':>10} {'daemon CPU':>11} {'load CPU':>9}"
    )
    for r in results:
        print(
            f"{r['offered_req_per_s']:8} {r['achieved_req_per_s']:9} {r['answered']:>5}/{r['requests']:<4} "
            f"{r['p50_ms']!s:>8} {r['p99_ms']!s:>8} {r['cpu_ms_per_req_relay']:10} "
            f"{r['cpu_ms_per_req_daemon']:11} {r['cpu_ms_per_req_load']:9}"
        )


if __name__ == "__main__":
    main()

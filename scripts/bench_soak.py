"""Soak: a steady stream of signups for minutes, with retention on, watching the database and memory.

A local ``nostr-relay`` and ``sigit-dvm run`` (a real process, its health listener on) on
127.0.0.1; the load sends request_account events for NEW addresses (fresh key each, PoW 8 bits)
at a fixed rate, built as they go so their ``created_at`` is current. Every SIGIT_BENCH_SAMPLE_S
it samples the database (file + WAL bytes, bytes in use = pages - free pages, rows per table), the
daemon's RSS (and its opening worker's) and how many requests were answered. Retention runs with
short windows so that a run of minutes reaches the steady state a real deployment reaches in
hours: requests are prunable 30 s after their ``created_at``, mail after 60 s, sessions after
about an hour, code counters after an hour, never-verified signups after an hour (the floor).

What stays is what new accounts need: a ``users`` row per new address (never verified ones go
after ``retention.unverified_s``), its session and code counter for their hour. The figure is
the slope of bytes in use against answered requests over the second half of the run.
Environment: SIGIT_BENCH_RATE (default 20 req/s), SIGIT_BENCH_SECONDS (default 180),
SIGIT_BENCH_SAMPLE_S (default 15), SIGIT_BENCH_RELAY (lmdb, the default, sqlite or rust).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from dvm.demo.local import write_local_config
from dvm.demo.relay import free_port
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import relay_label, start_relay

POW_BITS = 8
TABLES = (
    "users",
    "sessions",
    "code_sends",
    "code_send_minutes",
    "code_failures",
    "requests",
    "mail",
    "audit",
)
GROUPS = {  # dbstat names (tables and their indexes) by what they hold
    "requests": ("requests", "sqlite_autoindex_requests"),
    "mail": ("mail", "sqlite_autoindex_mail"),
    "sessions_and_codes": (
        "sessions",
        "sqlite_autoindex_sessions",
        "code_sends",
        "code_send_minutes",
        "code_failures",
    ),
    "users": ("users", "sqlite_autoindex_users"),
}


def start_daemon(
    directory: Path, relay_url: str, mail_dir: Path, port: int
) -> tuple[subprocess.Popen[bytes], str]:
    config, key = write_local_config(
        directory,
        [relay_url],
        25,
        overrides={
            "daemon": {"log_level": "warning"},
            "service": {
                "pow_request_account_bits": POW_BITS,
                "max_codes_per_email_per_hour": 1000,
                "max_codes_per_domain_per_hour": 10_000_000,  # every address of the load shares one
                "max_codes_per_hour": 10_000_000,
                "created_at_window_s": 30,
                "reply_ttl_s": 60,
                "code_ttl_s": 60,
                "resend_cooldown_s": 0,
                "activation_window_s": 60,
            },
            "relays": {"since_margin_s": 0},
            "mail": {"backend": "file", "outbox_dir": str(mail_dir)},
            "retention": {"interval_s": 5, "mail_s": 60, "unverified_s": 3600},
            "health": {"listen": f"127.0.0.1:{port}", "probe_interval_s": 1},
        },
    )
    log = (directory / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvm.cli", "-c", str(config), "run"], stdout=log, stderr=subprocess.STDOUT
    )
    return proc, key.pubkey_hex


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def database_sample(path: Path) -> dict[str, int]:
    wal = path.with_name(path.name + "-wal")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        by_table = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        conn.close()
    return {
        "file_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "used_bytes": (pages - free) * page,
        **{f"rows_{t}": n for t, n in rows.items()},
        "bytes_by_table": by_table,
        **{
            f"bytes_{group}": sum(b for n, b in by_table.items() if n.startswith(prefixes))
            for group, prefixes in GROUPS.items()
        },
    }


async def load(url: str, dvm: str, rate: float, seconds: float, counts: dict[str, int]) -> None:
    """Send signups for new addresses at ``rate`` for ``seconds``; count answered ones."""
    sent: set[str] = set()
    async with connect(url, max_size=2**22) as ws:
        await ws.send(messages.req("replies", {"kinds": [6780], "since": int(time.time()) - 5}))

        async def reader() -> None:
            async for raw in ws:
                msg = messages.parse_relay_message(raw)
                if isinstance(msg, messages.EventMsg):
                    for tag in msg.event.get("tags", []):
                        if tag[:1] == ["e"] and tag[1] in sent:
                            sent.discard(tag[1])
                            counts["answered"] += 1

        task = asyncio.create_task(reader())
        start = time.perf_counter()
        i = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate) + 1
            while i < due:
                event = build_request(
                    Encryptor(SecretKey.generate()),
                    dvm,
                    "request_account",
                    {"email": f"soak{i}-{int(start)}@example.org"},
                    int(time.time()),
                    pow_bits=POW_BITS,
                )
                sent.add(event.id)
                await ws.send(messages.event_raw(event.to_json()))
                counts["sent"] += 1
                i += 1
            await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 15
        while sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        task.cancel()


async def sampler(
    db: Path, pid: int, every_s: float, counts: dict[str, int], out: list[dict], done: asyncio.Event
):
    start = time.perf_counter()
    while True:
        worker = children(pid)
        sample = {
            "t_s": round(time.perf_counter() - start),
            "sent": counts["sent"],
            "answered": counts["answered"],
            "rss_kib": rss_kib(pid),
            "worker_rss_kib": sum(rss_kib(c) for c in worker),
            "fds": len(os.listdir(f"/proc/{pid}/fd")) if Path(f"/proc/{pid}/fd").exists() else 0,
            **(await asyncio.to_thread(database_sample, db)),
        }
        out.append(sample)
        mb = {k: sample[k] / 1e6 for k in ("used_bytes", "file_bytes", "wal_bytes")}
        print(
            f"  t={sample['t_s']:4}s answered={sample['answered']:6} used={mb['used_bytes']:6.2f} MB "
            f"file={mb['file_bytes']:6.2f} MB wal={mb['wal_bytes']:5.2f} MB "
            f"rss={sample['rss_kib'] / 1024:5.1f} MiB requests={sample['rows_requests']}",
            file=sys.stderr,
        )
        if done.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every_s)


def slope(samples: list[dict], key: str) -> float | None:
    """Least-squares bytes per answered request over the second half of the run."""
    half = samples[len(samples) // 2 :]
    xs = [s["answered"] for s in half]
    ys = [s[key] for s in half]
    if len(half) < 2 or max(xs) == min(xs):
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


async def run(rate: float, seconds: float, every_s: float, relay_name: str) -> dict:
    shm = Path("/dev/shm")
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as mail,
    ):
        directory = Path(tmp)
        relay = start_relay(directory / "relay", relay_name)
        proc, dvm = start_daemon(directory, relay.url, Path(mail), free_port())
        samples: list[dict] = []
        try:
            await asyncio.sleep(3.0)
            counts = {"sent": 0, "answered": 0}
            done = asyncio.Event()
            watch = asyncio.create_task(
                sampler(directory / "sigit-dvm.sqlite3", proc.pid, every_s, counts, samples, done)
            )
            await load(relay.url, dvm, rate, seconds, counts)
            done.set()
            await watch
        finally:
            proc.terminate()
            proc.wait(30)
            relay.stop()
        log = (directory / "daemon.log").read_text()
    per_request_used = slope(samples, "used_bytes")
    per_request_users = slope(samples, "rows_users")
    return {
        "rate_req_per_s": rate,
        "seconds": seconds,
        "sent": samples[-1]["sent"],
        "answered": samples[-1]["answered"],
        "used_bytes_per_1000_requests": None if per_request_used is None else round(per_request_used * 1000),
        "users_per_1000_requests": None if per_request_users is None else round(per_request_users * 1000),
        "daemon_log_warnings": [line for line in log.splitlines() if " WARNING " in line][:5],
        "bytes_by_table_at_end": samples[-1]["bytes_by_table"],
        "bytes_per_1000_requests_by_group": {
            group: None if (b := slope(samples, f"bytes_{group}")) is None else round(b * 1000)
            for group in GROUPS
        },
        "bytes_per_user_row": round(
            sum(
                b
                for n, b in samples[-1]["bytes_by_table"].items()
                if n.startswith(("users", "sqlite_autoindex_users"))
            )
            / max(1, samples[-1]["rows_users"])
        ),
        "samples": samples,
    }


def main() -> None:
    rate = float(os.environ.get("SIGIT_BENCH_RATE", "20"))
    seconds = float(os.environ.get("SIGIT_BENCH_SECONDS", "180"))
    every_s = float(os.environ.get("SIGIT_BENCH_SAMPLE_S", "15"))
    relay_name = os.environ.get("SIGIT_BENCH_RELAY", "lmdb")
    print(
        f"soak: {rate:g} signups/s of new addresses for {seconds:.0f} s, sampling every {every_s:g} s, "
        f"through {relay_label(relay_name)}",
        file=sys.stderr,
    )
    result = asyncio.run(run(rate, seconds, every_s, relay_name))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
        return
    s = result["samples"]
    print(f"soak: {result['answered']}/{result['sent']} answered at {rate:g} req/s over {seconds:.0f} s")
    print(
        f"{'t s':>5} {'answered':>9} {'used MB':>8} {'file MB':>8} {'wal MB':>7} {'RSS MiB':>8} "
        f"{'worker MiB':>10} {'fds':>4} {'requests':>9} {'sessions':>9} {'codes':>6} {'mail':>6} {'users':>7}"
    )
    for x in s:
        print(
            f"{x['t_s']:5} {x['answered']:9} {x['used_bytes'] / 1e6:8.2f} {x['file_bytes'] / 1e6:8.2f} "
            f"{x['wal_bytes'] / 1e6:7.2f} {x['rss_kib'] / 1024:8.1f} {x['worker_rss_kib'] / 1024:10.1f} "
            f"{x['fds']:4} {x['rows_requests']:9} {x['rows_sessions']:9} {x['rows_code_sends']:6} "
            f"{x['rows_mail']:6} {x['rows_users']:7}"
        )
    tables = sorted(result["bytes_by_table_at_end"].items(), key=lambda kv: -kv[1])
    print(
        "bytes by table and index at the end: " + ", ".join(f"{n} {b / 1e3:.0f} kB" for n, b in tables[:10])
    )
    print(
        f"steady state (second half): {result['used_bytes_per_1000_requests']} bytes in use "
        "per 1,000 requests, "
        f"{result['users_per_1000_requests']} new users per 1,000 requests; "
        f"{len(result['daemon_log_warnings'])} WARNING line(s) in the daemon's log"
    )
    print(f"a users row with its indexes: {result['bytes_per_user_row']} bytes")
    groups = result["bytes_per_1000_requests_by_group"]
    print("growth per 1,000 requests by what it holds: " + ", ".join(f"{g} {b}" for g, b in groups.items()))
    for line in result["daemon_log_warnings"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()

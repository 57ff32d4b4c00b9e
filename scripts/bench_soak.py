"""Soak: a steady stream of signups for minutes, with retention on, watching the database and memory.

A local ``nostr-relay`` and ``sigit-dvm run`` (a real process, its health listener on) on
127.0.0.1; the load sends signups for NEW addresses (fresh key each, PoW 8 bits) at a fixed rate,
built as they go so their ``created_at`` is current: three in four ``request_account``, one in
four ``register`` (sealed by a fresh account key: a ``seals`` row each). Every SIGIT_BENCH_SAMPLE_S
it samples the database (file + WAL bytes, bytes in use = pages - free pages, rows and bytes of
every table with its indexes), the daemon's RSS (and its opening worker's) and how many requests
were answered.

Retention runs every 5 s with short windows so that a run of minutes reaches the steady state a
real deployment reaches in hours or days: requests are prunable 30 s after their ``created_at``,
sent mail after 60 s, sessions 2 minutes after their last change, code counters after the caps'
window (``service.code_window_s`` = 1800 s here, an hour in production) and a minute, codes a
minute after that, never-verified signups after ``retention.unverified_s`` (1800 s: its floor is
the caps' window). So every table levels off after about 32 minutes; nothing these signups leave
is needed once they are gone (none of them verifies).

The verdict compares each table's level (rows and bytes) and the daemon's RSS over the last
SIGIT_BENCH_WINDOW_S (900 s, or the second half of a shorter run): least-squares slope, growth
over the window, and "flat" when that growth is under 2 % of the level (or a few rows, pages, or
a MiB of RSS). Environment: SIGIT_BENCH_RATE (default 20 req/s), SIGIT_BENCH_SECONDS (default
180; 4500 shows the steady state), SIGIT_BENCH_SAMPLE_S (default 15), SIGIT_BENCH_WINDOW_S,
SIGIT_BENCH_RELAY (lmdb, the default, sqlite or rust).
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
from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import relay_label, start_relay

POW_BITS = 8
TABLES = (  # every table that grows with traffic, then the others (blocks, leases, meta...)
    "users",
    "sessions",
    "codes",
    "code_sends",
    "code_send_minutes",
    "code_failures",
    "seals",
    "requests",
    "mail",
    "audit",
    "erased_addresses",
)
ABBREVIATED = {
    "code_send_minutes": "minutes",
    "code_failures": "failures",
    "code_sends": "sends",
    "erased_addresses": "erased",
}
FLAT_SHARE = 0.02  # growth over the window under this share of the level is flat
FLAT_ROWS, FLAT_BYTES, FLAT_RSS_KIB = 20, 4 * 4096, 1024  # ...or under these (noise at low levels)
RETENTION_INTERVAL_S = 5  # a pruned table's level saws by this much traffic: the noise allowed
CODE_WINDOW_S = 1800  # the code caps' window, and never-verified signups' keep (its floor)
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(90))  # the shape of a real key backup


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
                "code_window_s": CODE_WINDOW_S,
                "created_at_window_s": 30,
                "reply_ttl_s": 60,
                "code_ttl_s": 60,
                "resend_cooldown_s": 0,
                "activation_window_s": 60,
                "account_session_s": 60,
            },
            "relays": {"since_margin_s": 0},
            "mail": {"backend": "file", "outbox_dir": str(mail_dir)},
            "retention": {"interval_s": RETENTION_INTERVAL_S, "mail_s": 60, "unverified_s": CODE_WINDOW_S},
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


def database_sample(path: Path) -> dict:
    wal = path.with_name(path.name + "-wal")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        owner = dict(
            conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
        )
        others = sorted({t for t in owner.values() if not t.startswith("sqlite_")} - set(TABLES))
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (*TABLES, *others)}
        by_name = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        conn.close()
    by_table: dict[str, int] = {}
    for name, size in by_name.items():  # a table with its indexes (autoindexes included)
        table = owner.get(name) or name.removeprefix("sqlite_autoindex_").rsplit("_", 1)[0]
        by_table[table] = by_table.get(table, 0) + size
    return {
        "file_bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "used_bytes": (pages - free) * page,
        "rows": rows,
        "bytes": {t: by_table.get(t, 0) for t in rows},
        "bytes_by_name": by_name,
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
                email = f"soak{i}-{int(start)}@example.org"
                account = SecretKey.generate() if i % 4 == 3 else None  # one in four: register
                event = build_request(
                    Encryptor(SecretKey.generate()),
                    dvm,
                    "register" if account else "request_account",
                    {"email": email, "pubkey": account.pubkey_hex, "backup": BACKUP}
                    if account
                    else {"email": email},
                    int(time.time()),
                    pow_bits=POW_BITS,
                    seal=account,
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


def clear_mail(directory: Path) -> None:
    """Delete the written mails (``*.eml``, complete): a long soak would fill /dev/shm with them."""
    for path in directory.glob("*.eml"):
        path.unlink(missing_ok=True)


async def sampler(
    db: Path,
    pid: int,
    every_s: float,
    counts: dict[str, int],
    out: list[dict],
    done: asyncio.Event,
    mail: Path,
):
    start = time.perf_counter()
    while True:
        await asyncio.to_thread(clear_mail, mail)
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
        rows = sample["rows"]
        print(
            f"  t={sample['t_s']:4}s answered={sample['answered']:6} used={mb['used_bytes']:6.2f} MB "
            f"file={mb['file_bytes']:6.2f} MB wal={mb['wal_bytes']:5.2f} MB "
            f"rss={sample['rss_kib'] / 1024:5.1f} MiB "
            + " ".join(f"{ABBREVIATED.get(t, t)}={rows[t]}" for t in TABLES if rows[t]),
            file=sys.stderr,
            flush=True,
        )
        if done.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every_s)


def fit(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y against x."""
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var


def series(sample: dict) -> dict[str, float]:
    """What the verdict judges in one sample: rows and bytes per table, bytes in use, RSS."""
    out: dict[str, float] = {f"{t} rows": n for t, n in sample["rows"].items()}
    out |= {f"{t} bytes": b for t, b in sample["bytes"].items()}
    out["bytes in use"] = sample["used_bytes"]
    out["daemon RSS KiB"] = sample["rss_kib"]
    return out


def slack(name: str, sample: dict, rate: float) -> float:
    """The noise a flat series still shows: a pruned table's level saws by one retention pass's
    worth of traffic (its rows, or their bytes), sampled at a drifting phase; a few rows or pages
    at low levels; a MiB of RSS."""
    sawtooth_rows = rate * RETENTION_INTERVAL_S
    table, _, unit = name.rpartition(" ")
    if unit == "rows":
        return max(FLAT_ROWS, sawtooth_rows)
    if unit == "bytes" and table in sample["rows"]:
        per_row = sample["bytes"][table] / max(1, sample["rows"][table])
        return max(FLAT_BYTES, sawtooth_rows * per_row)
    return FLAT_RSS_KIB if name.endswith("KiB") else FLAT_BYTES


def judge(samples: list[dict], window_s: float, rate: float) -> dict:
    """Each series over the last ``window_s``: level, growth over the window (least squares),
    growth per 1,000 requests, and whether it is flat: growth within 2 % of the level, or within
    the series' noise (:func:`slack`)."""
    end = samples[-1]["t_s"]
    last = [s for s in samples if s["t_s"] >= end - window_s]
    span = last[-1]["t_s"] - last[0]["t_s"] if len(last) > 1 else 0
    answered = last[-1]["answered"] - last[0]["answered"] if last else 0
    out: dict[str, dict] = {}
    for name in series(samples[-1]):
        values = [(s["t_s"], series(s).get(name, 0)) for s in last]
        per_s = fit(values)
        growth = 0.0 if per_s is None else per_s * span
        level = sum(v for _, v in values) / len(values)
        out[name] = {
            "start": values[0][1],
            "end": values[-1][1],
            "level": round(level, 1),
            "growth": round(growth, 1),
            "per_1000_requests": round(growth / answered * 1000, 1) if answered else None,
            "flat": abs(growth) <= max(FLAT_SHARE * level, slack(name, samples[-1], rate)),
        }
    return {"window_s": span, "answered_in_window": answered, "series": out}


def verdict(result: dict, window_s: float) -> None:
    """Judge ``result``'s samples (again: ``--judge`` reads a saved ``--json`` run)."""
    result["window"] = judge(result["samples"], window_s, result["rate_req_per_s"])
    result["growing"] = [name for name, v in result["window"]["series"].items() if not v["flat"]]
    result["flat"] = not result["growing"]


async def run(rate: float, seconds: float, every_s: float, relay_name: str, window_s: float) -> dict:
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
                sampler(directory / "sigit-dvm.sqlite3", proc.pid, every_s, counts, samples, done, Path(mail))
            )
            await load(relay.url, dvm, rate, seconds, counts)
            done.set()
            await watch
        finally:
            proc.terminate()
            proc.wait(30)
            relay.stop()
        log = (directory / "daemon.log").read_text()
    result = {
        "rate_req_per_s": rate,
        "seconds": seconds,
        "sent": samples[-1]["sent"],
        "answered": samples[-1]["answered"],
        "daemon_log_warnings": [line for line in log.splitlines() if " WARNING " in line][:5],
        "bytes_by_name_at_end": samples[-1]["bytes_by_name"],
        "samples": samples,
    }
    verdict(result, window_s)
    return result


def thin(samples: list[dict], most: int = 40) -> list[dict]:
    """At most ``most`` samples, evenly spread, the last one included."""
    step = max(1, -(-len(samples) // most))
    picked = samples[::step]
    return picked if picked[-1] is samples[-1] else [*picked, samples[-1]]


def print_levels(samples: list[dict], what: str) -> None:
    key, unit = ("rows", 1) if what == "rows" else ("bytes", 1000)
    names = [ABBREVIATED.get(t, t) for t in TABLES]
    print(f"{what} per table (with its indexes) over time:" if what == "kB" else "rows per table over time:")
    print(f"{'t s':>5} {'answered':>9} " + " ".join(f"{n:>9}" for n in names) + f" {'RSS MiB':>8}")
    for x in thin(samples):
        cells = " ".join(f"{x[key][t] / unit:9.0f}" for t in TABLES)
        print(f"{x['t_s']:5} {x['answered']:9} {cells} {x['rss_kib'] / 1024:8.1f}")


def main() -> None:
    rate = float(os.environ.get("SIGIT_BENCH_RATE", "20"))
    seconds = float(os.environ.get("SIGIT_BENCH_SECONDS", "180"))
    every_s = float(os.environ.get("SIGIT_BENCH_SAMPLE_S", "15"))
    window_s = float(os.environ.get("SIGIT_BENCH_WINDOW_S", str(min(900.0, seconds / 2))))
    relay_name = os.environ.get("SIGIT_BENCH_RELAY", "lmdb")
    print(
        f"soak: {rate:g} signups/s of new addresses for {seconds:.0f} s, sampling every {every_s:g} s, "
        f"through {relay_label(relay_name)}",
        file=sys.stderr,
    )
    if "--judge" in sys.argv:  # a saved run (--json), judged and printed again
        result = json.loads(Path(sys.argv[sys.argv.index("--judge") + 1]).read_text())
        rate, seconds = result["rate_req_per_s"], result["seconds"]
        window_s = float(os.environ.get("SIGIT_BENCH_WINDOW_S", str(min(900.0, seconds / 2))))
        verdict(result, window_s)
    else:
        result = asyncio.run(run(rate, seconds, every_s, relay_name, window_s))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
        return
    s = result["samples"]
    print(f"soak: {result['answered']}/{result['sent']} answered at {rate:g} req/s over {seconds:.0f} s")
    print(
        f"{'t s':>5} {'answered':>9} {'used MB':>8} {'file MB':>8} {'wal MB':>7} {'RSS MiB':>8} "
        f"{'worker MiB':>10} {'fds':>4}"
    )
    for x in thin(s):
        print(
            f"{x['t_s']:5} {x['answered']:9} {x['used_bytes'] / 1e6:8.2f} {x['file_bytes'] / 1e6:8.2f} "
            f"{x['wal_bytes'] / 1e6:7.2f} {x['rss_kib'] / 1024:8.1f} {x['worker_rss_kib'] / 1024:10.1f} "
            f"{x['fds']:4}"
        )
    print_levels(s, "rows")
    print_levels(s, "kB")
    window = result["window"]
    print(
        f"over the last {window['window_s']} s ({window['answered_in_window']} requests answered): "
        "level, growth over the window (least squares), growth per 1,000 requests"
    )
    for name, v in window["series"].items():
        if v["level"] or v["growth"]:
            mark = "flat" if v["flat"] else "GROWING"
            per = v["per_1000_requests"]
            print(f"  {name:<24} {v['level']:>14,.0f} {v['growth']:>+12,.0f} {per!s:>10}  {mark}")
    for line in result["daemon_log_warnings"]:
        print(f"  {line}")
    print(f"{len(result['daemon_log_warnings'])} WARNING line(s) in the daemon's log")
    if result["flat"]:
        span = window["window_s"]
        print(f"verdict: flat: every table (rows and bytes) and the daemon's RSS over the last {span} s")
    else:
        print(f"verdict: GROWING over the last {window['window_s']} s: " + ", ".join(result["growing"]))


if __name__ == "__main__":
    main()

"""Private mode's timing: does request_login take longer for an address with an account?

A stranger probing addresses sends one ``request_login`` per address and times the answer. This
runs ``sigit-dvm run`` (a real process, private mode) behind a local relay, with a real SMTP
server in its own process (as a mail server is another machine) and ACCOUNTS activated accounts
made beforehand through the service itself. It sends, interleaved, one request_login for each
account's address and one for an address nobody uses, each from a fresh key, a request every
GAP_MS. For each it takes the daemon's own latency (its log: from the relay's event to the
committed decision) and the client's (publish to reply), and compares the two groups with a
Mann-Whitney U test (z; |z| < 2: no difference the test can tell at 95 %), with medians and p90s.

Environment: SIGIT_BENCH_ORACLE_SAMPLES (default 300 per group), SIGIT_BENCH_ORACLE_GAP_MS
(default 40), SIGIT_BENCH_ORACLE_METHOD (request_login, the default, or request_account: a
stranger may probe with either).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_e2e import read_replies
from websockets.asyncio.client import connect

from dvm.demo.local import write_local_config
from dvm.demo.relay import LocalRelay
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages
from dvm.rules import ServiceRules
from dvm.service import AccountService
from dvm.store import database
from tests.support.smtp import free_port

POW_BITS = 8
COMMAND = "scripts/bench oracle"


def make_accounts(db: Path, key: SecretKey, code_secret: bytes, count: int) -> list[str]:
    """``count`` activated accounts, made by the service itself (register, then its code)."""
    from dvm.protocol.intake import open_request
    from dvm.store.sealed import ParamsSeal

    conn = database.connect(db)
    service = AccountService(Encryptor(key), code_secret, ServiceRules())
    seal = ParamsSeal(code_secret)
    now = int(time.time())
    emails = []
    for i in range(count):
        email = f"member{i}@example.org"
        browser, account = Encryptor(SecretKey.generate()), SecretKey.generate()
        params = {"pubkey": account.pubkey_hex, "email": email, "backup": "QUJD"}
        for method, given, sealed in (("register", params, account), ("verify_code", None, None)):
            values = given
            if values is None:
                row = conn.execute(
                    "SELECT params, message_id FROM mail WHERE recipient = ? ORDER BY id DESC LIMIT 1",
                    (email,),
                ).fetchone()
                values = {"code": str(seal.open(row[0], row[1])["code"])}
            bits = 16 if method == "register" else 12
            event = build_request(browser, key.pubkey_hex, method, values, now, pow_bits=bits, seal=sealed)
            (answer,) = service.commit(
                conn, [open_request(event, service.encryptor, service.rules.intake, now)], now
            )
            assert not isinstance(answer, Exception) and answer.outcome == "ok", answer
        emails.append(email)
    conn.execute("UPDATE mail SET status = 'sent', sent_at = ?", (now,))  # the setup's mail: not measured
    conn.commit()
    conn.close()
    return emails


def mann_whitney_z(a: list[float], b: list[float]) -> float:
    """The normal approximation of the Mann-Whitney U statistic (ties averaged): positive when
    ``a`` tends to be larger."""
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mean, sd = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return (u1 - mean) / sd


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):6.2f} ms  p90 {p90:6.2f} ms"


async def probe(
    url: str, dvm: str, pairs: list[tuple[str, str]], gap_s: float
) -> dict[str, tuple[str, float]]:
    """Send every (group, event) in order, ``gap_s`` apart; return event id -> (group, client ms)."""
    sent: dict[str, tuple[str, float]] = {}
    got: dict[str, float] = {}
    async with connect(url, max_size=2**22) as ws:
        keys = [json.loads(raw)["pubkey"] for _, raw in pairs]
        await ws.send(messages.req("replies", {"kinds": [6780], "#p": keys}))

        task = asyncio.create_task(read_replies(ws, sent, got))
        await asyncio.sleep(0.5)
        for group, raw in pairs:
            event_id = json.loads(raw)["id"]
            sent[event_id] = (group, time.perf_counter())
            await ws.send(messages.event_raw(raw))
            await asyncio.sleep(gap_s)
        deadline = time.perf_counter() + 20
        while time.perf_counter() < deadline and len(got) < len(sent):
            await asyncio.sleep(0.05)
        task.cancel()
    return {e: (group, (got[e] - t) * 1000) for e, (group, t) in sent.items() if e in got}


def daemon_latencies(log: Path) -> dict[str, tuple[float, str]]:
    """request id -> (the daemon's latency_ms, the outcome), from its JSON log."""
    found = {}
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "latency_ms" in record and "event" in record:
            found[record["event"]] = (float(record["latency_ms"]), str(record["outcome"]))
    return found


async def main() -> None:
    samples = int(os.environ.get("SIGIT_BENCH_ORACLE_SAMPLES", "300"))
    method = os.environ.get("SIGIT_BENCH_ORACLE_METHOD", "request_login")
    gap_s = int(os.environ.get("SIGIT_BENCH_ORACLE_GAP_MS", "40")) / 1000
    with tempfile.TemporaryDirectory(prefix="sigit-oracle-") as tmp:
        root = Path(tmp)
        relay = LocalRelay(root / "relay", storage="lmdb").start()
        smtp_port = free_port()
        smtp = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{smtp_port}",
                "-c",
                "aiosmtpd.handlers.Sink",
            ]
        )
        try:
            config, key = write_local_config(
                root / "dvm",
                [relay.url],
                smtp_port,
                overrides={
                    "daemon": {"log_level": "info", "log_format": "json"},
                    "service": {
                        "private_mode": True,
                        "pow_request_login_bits": POW_BITS,
                        "pow_request_account_bits": POW_BITS,
                        # the setup's signups all go to example.org: no price for the probe
                        "max_codes_per_domain_per_hour": 10_000_000,
                        "max_codes_per_hour": 10_000_000,
                    },
                },
            )
            code_secret = (root / "dvm" / "code.secret").read_text().strip().encode()
            members = make_accounts(root / "dvm" / "sigit-dvm.sqlite3", key, code_secret, samples)
            now = int(time.time())
            pairs = []
            rng = random.Random(7)
            for i, member in enumerate(members):
                order = [("account", member), ("nobody", f"stranger{i}@example.org")]
                rng.shuffle(order)
                for group, email in order:
                    client = Encryptor(SecretKey.generate())
                    event = build_request(
                        client, key.pubkey_hex, method, {"email": email}, now, pow_bits=POW_BITS
                    )
                    pairs.append((group, event.to_json()))
            log = root / "dvm" / "daemon.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dvm.cli", "-c", str(config), "run"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                await asyncio.sleep(3)  # connected and subscribed
                client_ms = await probe(relay.url, key.pubkey_hex, pairs, gap_s)
                await asyncio.sleep(1)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
            daemon_ms = daemon_latencies(log)
            conn = database.connect(root / "dvm" / "sigit-dvm.sqlite3")
            # The setup's mail was made before the probe began.
            query = "SELECT kind, status, count(*) FROM mail WHERE created_at >= ? GROUP BY kind, status"
            mailed = {f"{kind} {status}": n for kind, status, n in conn.execute(query, (now,))}
            conn.close()
        finally:
            smtp.terminate()
            relay.stop()
    groups: dict[str, dict[str, list[float]]] = {
        "account": {"daemon": [], "client": []},
        "nobody": {"daemon": [], "client": []},
    }
    outcomes: dict[str, dict[str, int]] = {"account": {}, "nobody": {}}
    for event_id, (group, ms) in client_ms.items():
        groups[group]["client"].append(ms)
        if event_id in daemon_ms:
            latency, outcome = daemon_ms[event_id]
            groups[group]["daemon"].append(latency)
            outcomes[group][outcome] = outcomes[group].get(outcome, 0) + 1
    shape = f"private mode; {samples} {method} per group, interleaved, {gap_s * 1000:.0f} ms apart"
    prefix = f"SIGIT_BENCH_ORACLE_METHOD={method} " if method != "request_login" else ""
    print(f"$ {prefix}{COMMAND}  ({shape})")
    for side in ("daemon", "client"):
        a, b = groups["account"][side], groups["nobody"][side]
        if len(a) < 3 or len(b) < 3:
            print(f"{side:6}: too few samples ({len(a)}, {len(b)})")
            continue
        z = mann_whitney_z(a, b)
        print(
            f"{side:6}: account {summary(a)} (n={len(a)})  |  nobody {summary(b)} (n={len(b)})  |  "
            f"Mann-Whitney z = {z:+.2f} {'(no difference at 95 %)' if abs(z) < 2 else '(a DIFFERENCE)'}"
        )
    print(f"answers: {outcomes}; mail during the probe: {mailed or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())

"""A flood of zero-PoW junk while a legitimate client signs up: what the junk costs the daemon.

A local ``nostr-relay`` and ``sigit-dvm run`` (a real process) on 127.0.0.1. Three phases:
1. a legitimate client alone sends one signup (PoW 8 bits) every 0.2 s and measures
   publish-to-reply latency (the baseline);
2. FLOOD request_account events without proof of work, each from a fresh key, alone: database
   bytes per junk event (file + WAL; goal 0), replies the daemon published for junk (goal 0), the
   daemon's CPU per junk event (with its opening worker) and its RSS before and after;
3. the legitimate client again while another FLOOD junk events go out: its p99 and max latency
   (goal: within 2x of the baseline), and where it waited: until a spy subscription with the
   daemon's own filter got it from the relay, and inside the daemon (its INFO log's latency_ms,
   from the relay connection handing it over to its answer).
Environment: SIGIT_BENCH_FLOOD (default 3000 junk events), SIGIT_BENCH_LEGIT_S (default 10: each
legitimate phase's length), SIGIT_BENCH_RELAY (lmdb, the default, or sqlite: nostr-relay's
storage; rust: rust-nostr's relay).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import POW_BITS, cpu_seconds, relay_label, start_daemon, start_relay

KIND = 5780
LEGIT_EVERY_S = 0.2


def junk_events(dvm_hex: str, count: int) -> list[str]:
    """``count`` request_account events without PoW, each from its own fresh key."""
    now = int(time.time())
    out = []
    for i in range(count):
        key = SecretKey.generate()
        content = Encryptor(key).encrypt(
            bytes.fromhex(dvm_hex),
            json.dumps({"method": "request_account", "params": {"email": f"j{i}@x.org"}}),
        )
        out.append(sign_event(key, KIND, content, now, [("p", dvm_hex)]).to_json())
    return out


@dataclass
class Legit:
    """One legitimate phase: per request, when it was published, when a spy subscription with the
    daemon's own filter got it from the relay, and when its reply came back (monotonic seconds)."""

    sent: dict[str, float] = field(default_factory=dict)
    relayed: dict[str, float] = field(default_factory=dict)
    replied: dict[str, float] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        """Publish to reply, ms."""
        return [(self.replied[e] - self.sent[e]) * 1000 for e in self.sent if e in self.replied]

    def relay_handover(self) -> list[float]:
        """Publish to the spy's copy, ms: what the relay alone takes to hand the request over."""
        return [(self.relayed[e] - self.sent[e]) * 1000 for e in self.sent if e in self.relayed]


async def spy(url: str, dvm: str, phase: Legit, ready: asyncio.Event) -> None:
    """Subscribe as the daemon does (kinds + #p) and note when each legitimate request arrives."""
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps(["REQ", "spy", {"kinds": [KIND], "#p": [dvm], "since": int(time.time())}]))
        ready.set()
        async for raw in ws:
            if '"EVENT"' not in raw[:12]:
                continue
            event_id = json.loads(raw)[2]["id"]
            if event_id in phase.sent and event_id not in phase.relayed:
                phase.relayed[event_id] = time.monotonic()


async def legit(url: str, dvm: str, seconds: float) -> Legit:
    """Signups every LEGIT_EVERY_S for ``seconds``; when each was sent, relayed and answered."""
    phase = Legit()
    ready = asyncio.Event()
    spying = asyncio.create_task(spy(url, dvm, phase, ready))
    await ready.wait()
    async with connect(url, max_size=None) as ws:
        sent = phase.sent
        deadline = time.monotonic() + seconds
        n = 0

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == "EVENT" and msg[1] == "replies":
                    for tag in msg[2]["tags"]:
                        if tag[0] == "e" and tag[1] in sent and tag[1] not in phase.replied:
                            phase.replied[tag[1]] = time.monotonic()

        task = asyncio.create_task(reader())
        while time.monotonic() < deadline:
            client = Encryptor(SecretKey.generate())
            event = build_request(
                client,
                dvm,
                "request_account",
                {"email": f"legit{n}-{time.time()}@example.org"},
                int(time.time()),
                pow_bits=POW_BITS,
            )
            await ws.send(json.dumps(["REQ", "replies", {"kinds": [KIND + 1000], "#p": [event.pubkey]}]))
            sent[event.id] = time.monotonic()
            await ws.send(json.dumps(["EVENT", event.to_dict()]))
            n += 1
            await asyncio.sleep(LEGIT_EVERY_S)
        await asyncio.sleep(2.0)
        task.cancel()
    spying.cancel()
    return phase


_ANSWERED = re.compile(
    r"request ([0-9a-f]{12}) method=\S+ outcome=\S+(?: \(replayed\))? latency_ms=([0-9.]+)"
)


def daemon_latencies(log: Path, ids: list[str]) -> list[float]:
    """From the daemon's INFO log: how long each of ``ids`` waited inside the daemon, from its
    intake (the relay connection handing it over) to its answer, in ms."""
    wanted = {event_id[:12] for event_id in ids}
    found = [
        float(m.group(2))
        for line in log.read_text(errors="replace").splitlines()
        if (m := _ANSWERED.search(line)) and m.group(1) in wanted
    ]
    return found


async def flood(url: str, events: list[str]) -> float:
    started = time.monotonic()
    async with connect(url, max_size=None) as ws:
        # Read the relay's OKs: unread, they fill the client's queue and the close waits 10 s.
        drain = asyncio.create_task(_drain(ws))
        for raw in events:
            await ws.send(f'["EVENT",{raw}]')
        await asyncio.sleep(1.0)
        drain.cancel()
    return time.monotonic() - started


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def replies_for(url: str, dvm: str, ids: list[str]) -> int:
    found = 0
    async with connect(url, max_size=None) as ws:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            await ws.send(json.dumps(["REQ", "r", {"kinds": [KIND + 1000], "authors": [dvm], "#e": chunk}]))
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == "EVENT":
                    found += 1
                elif msg[0] in ("EOSE", "CLOSED"):
                    break
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def db_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.sqlite3*"))


def p99(values: list[float]) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)] if ordered else float("nan")


async def main() -> None:
    count = int(os.environ.get("SIGIT_BENCH_FLOOD", "3000"))
    legit_s = float(os.environ.get("SIGIT_BENCH_LEGIT_S", "10"))
    relay_name = os.environ.get("SIGIT_BENCH_RELAY", "lmdb")
    with (
        tempfile.TemporaryDirectory(prefix="sigit-flood-") as tmp,
        tempfile.TemporaryDirectory(prefix="sigit-mail-") as mail,
    ):
        root = Path(tmp)
        relay = start_relay(root / "relay", relay_name)
        daemon, key = start_daemon(root / "dvm", relay.url, Path(mail), log_level="info")
        dvm = key.pubkey_hex
        try:
            await asyncio.sleep(3.0)
            base = await legit(relay.url, dvm, legit_s)
            junk = junk_events(dvm, 2 * count)
            ids = [json.loads(raw)["id"] for raw in junk]
            await asyncio.sleep(2.0)
            before_db, before_rss, before_cpu = (
                db_bytes(root / "dvm"),
                rss_kb(daemon.pid),
                cpu_seconds(daemon.pid),
            )
            flood_s = await flood(relay.url, junk[:count])
            await asyncio.sleep(3.0)
            after_db, after_rss, after_cpu = (
                db_bytes(root / "dvm"),
                rss_kb(daemon.pid),
                cpu_seconds(daemon.pid),
            )
            flood_task = asyncio.create_task(flood(relay.url, junk[count:]))
            during = await legit(relay.url, dvm, legit_s)
            await flood_task
            await asyncio.sleep(2.0)
            published = await replies_for(relay.url, dvm, ids)
        finally:
            daemon.terminate()
            daemon.wait(30)
            relay.stop()
        inside = [daemon_latencies(root / "dvm" / "daemon.log", list(p.sent)) for p in (base, during)]
    print(
        f"command: SIGIT_BENCH_FLOOD={count} SIGIT_BENCH_LEGIT_S={legit_s:g} SIGIT_BENCH_RELAY={relay_name} "
        "scripts/bench flood"
    )
    print(f"relay: {relay_label(relay_name)}")
    print(f"flood: {count} zero-PoW request_account events from fresh keys, sent in {flood_s:.1f} s")
    print(f"database bytes per junk event          {(after_db - before_db) / count:8.1f}   (goal 0)")
    print(f"replies published for junk             {published:8d}   (goal 0, of {2 * count})")
    print(f"daemon CPU per junk event, us          {(after_cpu - before_cpu) / count * 1e6:8.0f}")
    print(f"daemon RSS MiB, before / after flood   {before_rss / 1024:8.1f} / {after_rss / 1024:.1f}")
    alone, flooded = base.latencies(), during.latencies()
    print(
        f"legit signups answered, alone / flood  {len(alone):8d} / {len(flooded)}"
        f"   (of {len(base.sent)} / {len(during.sent)})"
    )
    print(
        f"legit p99 ms, alone / during flood     {p99(alone):8.1f} / {p99(flooded):.1f}   (goal: within 2x)"
    )
    worst = max(alone, default=float("nan")), max(flooded, default=float("nan"))
    print(f"legit max ms, alone / during flood     {worst[0]:8.1f} / {worst[1]:.1f}")
    print("where a legitimate request waits, p99 ms alone / during the flood:")
    handover = base.relay_handover(), during.relay_handover()
    relay_line = f"{p99(handover[0]):8.1f} / {p99(handover[1]):.1f}"
    print(f"  relay: publish -> a spy with the daemon's filter gets it {relay_line}")
    daemon_line = f"{p99(inside[0]):8.1f} / {p99(inside[1]):.1f}"
    print(f"  daemon: its intake -> its answer (its log)               {daemon_line}")


if __name__ == "__main__":
    asyncio.run(main())

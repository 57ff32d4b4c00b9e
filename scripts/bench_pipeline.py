"""In-process pipeline throughput next to the floor, in one run.

Pipeline: pre-built request_account events (signed, PoW-mined to 8 bits, NIP-44 encrypted, each
from its own ephemeral key) go into the daemon's intake exactly as a relay connection hands them
over; the daemon verifies, decrypts, decides in group-committed SQLite transactions (a real file,
WAL, synchronous=FULL), encrypts and signs each reply, queues the code email and marks the reply
published by a relay stub that accepts at once (no network: that is section 2's job).

Floor: the same unavoidable work done by bare library calls, no framework: BIP-340 verify
(coincurve), raw-x ECDH (libsecp256k1), NIP-44 decrypt and encrypt (cryptography + hmac), BIP-340
sign with a prebuilt keypair, and the same five rows written with plain sqlite3 in transactions of
the same batch size.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_e2e import cpu_seconds, processes
from coincurve import PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from dvm.config import DaemonSettings, MailSettings, RelaySettings, ServiceSettings, Settings, StoreSettings
from dvm.daemon import Daemon, Secrets
from dvm.nostr import nip44
from dvm.nostr.encoding import decode_base64
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays.connection import PublishResult

POW_BITS = 8
EMPTY_SUCCESS = os.environ.get("SIGIT_BENCH_EMPTY_SUCCESS", "") == "1"
"""The seed's empty content for a success without data (what 1b1da68 sent), instead of a padded
encrypted one: the same reply work as before the replies were padded, for comparisons."""


class AcceptingPool:
    """Stands in for the relay pool: every reply is accepted at once."""

    urls: tuple[str, ...] = ()
    connected = ("stub",)

    async def publish(self, event: Event) -> list[PublishResult]:
        return [PublishResult("stub", True, "")]

    async def update(self, urls: object) -> tuple[list[str], list[str]]:
        return [], []

    async def close(self) -> None:
        return None


def make_events(dvm_pubkey: str, count: int) -> list[dict]:
    now = int(time.time())
    out = []
    for i in range(count):
        client = Encryptor(SecretKey.generate())
        params = {"email": f"bench{i}@example.org"}
        out.append(
            build_request(client, dvm_pubkey, "request_account", params, now, pow_bits=POW_BITS).to_dict()
        )
    return out


async def pipeline(events: list[dict], directory: Path, key: SecretKey) -> float:
    (directory / "relays.toml").write_text('relays = ["ws://127.0.0.1:9"]\n')  # a stub pool: never dialled
    settings = Settings(
        service=ServiceSettings(
            pow_request_account_bits=POW_BITS,
            max_codes_per_email_per_hour=1000,
            max_codes_per_domain_per_hour=10_000_000,  # every address of the load shares one domain
            max_codes_per_hour=10_000_000,
            empty_success_replies=EMPTY_SUCCESS,
        ),
        store=StoreSettings(path="bench.sqlite3", batch_max=int(os.environ.get("SIGIT_BENCH_BATCH", "64"))),
        mail=MailSettings(backend="file", poll_s=3600),
        relays=RelaySettings(),
        daemon=DaemonSettings(max_in_flight=4096),
        base_dir=directory,
    )
    daemon = Daemon(settings, Secrets(key, b"bench-code-secret-0123456789"))
    daemon.pool = daemon.publisher.pool = AcceptingPool()  # type: ignore[assignment]
    await daemon.start()
    daemon._mail_stopping.set()  # mail is section 3: here the mail rows are only queued
    started, cpu = time.perf_counter(), (cpu_seconds(os.getpid()), workers_cpu_s())
    for raw in events:
        await daemon.pipeline.submit(raw, "bench")
    while daemon.handled < len(events):
        await asyncio.sleep(0.001)
    await daemon.publisher.drain(60.0)
    elapsed = time.perf_counter() - started
    CPU_S.update(daemon=cpu_seconds(os.getpid()) - cpu[0], worker=workers_cpu_s() - cpu[1])
    await daemon.shutdown()
    return elapsed


CPU_S: dict[str, float] = {}
"""The pipeline run's CPU seconds: this process (the daemon's event loop), and its opening worker."""


def workers_cpu_s() -> float:
    """User + system CPU of this process's live children (the opening worker), from /proc."""
    parents, ticks = processes()
    me = os.getpid()
    return sum(ticks[pid] for pid, parent in parents.items() if parent == me) / os.sysconf("SC_CLK_TCK")


def floor(events: list[dict], directory: Path, key: SecretKey, batch: int) -> float:
    """Bare library calls doing the same unavoidable work for every event."""
    ctx = GLOBAL_CONTEXT.ctx
    keypair = ffi.new("secp256k1_keypair *")
    lib.secp256k1_keypair_create(ctx, keypair, key.secret_bytes())

    def copy_x(out, x32, _y32, _data):
        ffi.memmove(out, x32, 32)
        return 1

    copy_cb = ffi.callback("int(unsigned char *, const unsigned char *, const unsigned char *, void *)")(
        copy_x
    )
    conn = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(
        "CREATE TABLE u (id TEXT PRIMARY KEY, email TEXT UNIQUE, t INTEGER);"
        "CREATE TABLE s (pubkey TEXT PRIMARY KEY, user_id TEXT, h TEXT, t INTEGER);"
        "CREATE TABLE c (user_id TEXT, t INTEGER);"
        "CREATE TABLE m (id INTEGER PRIMARY KEY, token TEXT UNIQUE, recipient TEXT, params TEXT, t INTEGER);"
        "CREATE TABLE r (event_id TEXT PRIMARY KEY, reply TEXT, t INTEGER);"
    )
    started = time.perf_counter()
    rows = []
    for ev in events:
        # verify the event (id hash + BIP-340)
        serial = json.dumps(
            [0, ev["pubkey"], ev["created_at"], ev["kind"], ev["tags"], ev["content"]],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        event_id = hashlib.sha256(serial).digest()
        PublicKeyXOnly(bytes.fromhex(ev["pubkey"])).verify(bytes.fromhex(ev["sig"]), event_id)
        # raw-x ECDH + conversation key
        point = ffi.new("secp256k1_pubkey *")
        lib.secp256k1_ec_pubkey_parse(ctx, point, b"\x02" + bytes.fromhex(ev["pubkey"]), 33)
        shared = ffi.new("unsigned char[32]")
        lib.secp256k1_ecdh(ctx, shared, point, key.secret_bytes(), copy_cb, ffi.NULL)
        conv = nip44.conversation_key(bytes(ffi.buffer(shared, 32)))
        # NIP-44 decrypt
        data = decode_base64(ev["content"], "p")
        nonce, ct, mac = data[1:33], data[33:-32], data[-32:]
        keys = HKDFExpand(hashes.SHA256(), 76, nonce).derive(conv)
        hmac.compare_digest(mac, hmac.digest(keys[44:], nonce + ct, "sha256"))
        Cipher(algorithms.ChaCha20(keys[:32], bytes(4) + keys[32:44]), None).decryptor().update(ct)
        # NIP-44 encrypt of a reply and BIP-340 sign with a prebuilt keypair
        nonce2 = os.urandom(32)
        keys2 = HKDFExpand(hashes.SHA256(), 76, nonce2).derive(conv)
        ct2 = (
            Cipher(algorithms.ChaCha20(keys2[:32], bytes(4) + keys2[32:44]), None)
            .encryptor()
            .update(bytes(64))
        )
        hmac.digest(keys2[44:], nonce2 + ct2, "sha256")
        sig = ffi.new("unsigned char[64]")
        lib.secp256k1_schnorrsig_sign32(ctx, sig, hashlib.sha256(ct2).digest(), keypair, os.urandom(32))
        rows.append((ev["id"], ev["pubkey"]))
        if len(rows) == batch:
            _floor_write(conn, rows)
            rows = []
    if rows:
        _floor_write(conn, rows)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def _floor_write(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for event_id, pubkey in rows:
        conn.execute("INSERT INTO u VALUES (?, ?, 1)", (event_id[:32], event_id))
        conn.execute("INSERT INTO s VALUES (?, ?, ?, 1)", (pubkey, event_id[:32], "h" * 64))
        conn.execute("INSERT INTO c VALUES (?, 1)", (event_id[:32],))
        conn.execute(
            "INSERT INTO m (token, recipient, params, t) VALUES (?, ?, ?, 1)", (event_id, "a@b", "{}")
        )
        conn.execute("INSERT INTO r VALUES (?, ?, 1)", (event_id, "x" * 400))
    conn.execute("COMMIT")


def main() -> None:
    count = int(os.environ.get("SIGIT_BENCH_REQUESTS", "2000"))
    key = SecretKey.generate()
    print(
        f"building {count} signed, PoW-mined ({POW_BITS} bits), NIP-44 encrypted requests...", file=sys.stderr
    )
    events = make_events(key.pubkey_hex, count)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        floor_s = floor(events, directory, key, batch=64)
        pipe_s = asyncio.run(pipeline(events, directory, key))
    result = {
        "requests": count,
        "pipeline_req_per_s": round(count / pipe_s),
        "floor_req_per_s": round(count / floor_s),
        "ratio": round(floor_s / pipe_s, 2),
        "pipeline_us_per_req": round(pipe_s / count * 1e6),
        "floor_us_per_req": round(floor_s / count * 1e6),
        "daemon_cpu_us_per_req": round(CPU_S["daemon"] / count * 1e6),
        "worker_cpu_us_per_req": round(CPU_S["worker"] / count * 1e6),
    }
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
        return
    reply = "empty success replies" if EMPTY_SUCCESS else "padded encrypted replies"
    print(f"{'in process, request_account':34} {'req/s':>8} {'us/req':>8}   ({reply})")
    print(f"{'floor (bare library calls)':34} {result['floor_req_per_s']:8} {result['floor_us_per_req']:8}")
    print(f"{'sigit-dvm pipeline':34} {result['pipeline_req_per_s']:8} {result['pipeline_us_per_req']:8}")
    print(f"pipeline / floor = {result['ratio']:.2f} (goal: at least 0.5)")
    print(
        f"pipeline CPU us/req: event loop {result['daemon_cpu_us_per_req']}, "
        f"opening worker {result['worker_cpu_us_per_req']}"
    )


if __name__ == "__main__":
    main()

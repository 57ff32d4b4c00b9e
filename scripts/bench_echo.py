"""The reference peer: sigit-dvm's CPU per request next to a small echo DVM's, on the same relay.

The echo DVM (``echo_dvm`` below, on rust-nostr's Python bindings, nostr-sdk) subscribes to the
request kind addressed to its key, NIP-44-decrypts each request and replies with the plaintext
NIP-44-encrypted back, tagged like a DVM result. It checks no PoW, writes no database and sends no
mail: the least a DVM can do per request, in a compiled library. At each rate the same load
(bench_e2e's: request_account events, PoW 8 bits, NIP-44, CLIENTS connections) runs against the
echo DVM, then against ``sigit-dvm run``, each alone on the relay; the table shows each one's CPU
per request (user + system from /proc, the daemon with its opening worker) and the ratio.
Environment: SIGIT_BENCH_RATES (default 10,100), SIGIT_BENCH_SECONDS (default 8),
SIGIT_BENCH_RELAY (rust, the default: rust-nostr's relay; lmdb or sqlite: nostr-relay).
Run as ``bench_echo.py --peer RELAY_URL SECRET_HEX``, this file is the echo DVM process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import relay_label, run_rate, start_daemon, start_relay

from dvm.nostr.keys import SecretKey

REQUEST_KIND = 5780


async def echo_dvm(relay_url: str, secret_hex: str) -> None:
    """Answer every request to our key with its own plaintext, encrypted back (until killed)."""
    import nostr_sdk as rn  # the peer process alone needs the bindings

    keys = rn.Keys.parse(secret_hex)
    client = rn.Client()
    await client.add_relay(rn.RelayUrl.parse(relay_url))
    await client.connect()
    requests = rn.Filter().kind(rn.Kind(REQUEST_KIND)).pubkey(keys.public_key()).since(rn.Timestamp.now())
    await client.subscribe(rn.ReqTarget.auto([requests]))
    notifications = client.notifications()
    replies: set[asyncio.Task[object]] = set()
    while (note := await notifications.next()) is not None:
        if not note.is_new_event():
            continue
        request = note.event
        if request.kind().as_u16() != REQUEST_KIND:
            continue
        try:
            text = rn.nip44_decrypt(keys.secret_key(), request.author(), request.content())
        except Exception:  # not for us, or not NIP-44: an echo DVM drops it
            continue
        content = rn.nip44_encrypt(keys.secret_key(), request.author(), text, rn.Nip44Version.V2)
        tags = [rn.Tag.event(request.id()), rn.Tag.public_key(request.author())]
        builder = rn.EventBuilder(rn.Kind(REQUEST_KIND + 1000), content).tags(tags)
        reply = builder.finalize_unsigned(keys.public_key()).sign(keys)
        task = asyncio.ensure_future(client.send_event(reply))  # its OK is awaited off the read loop
        replies.add(task)
        task.add_done_callback(replies.discard)


def start_echo(relay_url: str, key: SecretKey, log: Path) -> subprocess.Popen[bytes]:
    secret = key.secret_bytes().hex()
    with log.open("ab") as out:  # the secret goes by argument: a throwaway key on a local relay
        return subprocess.Popen(
            [sys.executable, __file__, "--peer", relay_url, secret], stdout=out, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def measure(url: str, key: SecretKey, proc: subprocess.Popen[bytes], rate: int, seconds: float) -> dict:
    pids = {"dvm": proc.pid, "load": os.getpid()}
    return asyncio.run(run_rate(url, key.pubkey_hex, rate, seconds, pids))


def main() -> None:
    rates = [int(r) for r in os.environ.get("SIGIT_BENCH_RATES", "10,100").split(",")]
    seconds = float(os.environ.get("SIGIT_BENCH_SECONDS", "8"))
    relay_name = os.environ.get("SIGIT_BENCH_RELAY", "rust")
    rows = []
    shm = Path("/dev/shm")
    with (
        tempfile.TemporaryDirectory(prefix="sigit-echo-") as tmp,
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as mail,
    ):
        directory = Path(tmp)
        relay = start_relay(directory / "relay", relay_name)
        try:
            for rate in rates:
                print(f"offering {rate} req/s for {seconds:g} s to the echo DVM...", file=sys.stderr)
                key = SecretKey.generate()
                echo = start_echo(relay.url, key, directory / "echo.log")
                try:
                    time.sleep(1.5)  # connected and subscribed
                    peer = measure(relay.url, key, echo, rate, seconds)
                finally:
                    stop(echo)
                print(f"offering {rate} req/s for {seconds:g} s to sigit-dvm...", file=sys.stderr)
                daemon, key = start_daemon(directory / f"dvm-{rate}", relay.url, Path(mail) / str(rate))
                try:
                    time.sleep(2.0)
                    ours = measure(relay.url, key, daemon, rate, seconds)
                finally:
                    stop(daemon)
                rows.append({"offered_req_per_s": rate, "echo": peer, "sigit": ours})
        finally:
            relay.stop()
    command = (
        f"SIGIT_BENCH_RATES={','.join(map(str, rates))} SIGIT_BENCH_SECONDS={seconds:g} "
        f"SIGIT_BENCH_RELAY={relay_name} scripts/bench echo"
    )
    if "--json" in sys.argv:
        print(json.dumps({"command": command, "relay": relay_name, "rows": rows}, indent=2))
        return
    print(f"command: {command}")
    where = relay_label(relay_name)
    print(f"reference peer: an echo DVM on nostr-sdk (under 50 lines) vs sigit-dvm, through {where}")
    print(
        f"{'offered':>8} {'echo answered':>14} {'sigit answered':>15} {'echo CPU ms':>12} "
        f"{'sigit CPU ms':>13} {'sigit/echo':>11} {'echo p50':>9} {'sigit p50':>10}"
    )
    for row in rows:
        e, s = row["echo"], row["sigit"]
        e_cpu, s_cpu = e["cpu_ms_per_req_dvm"], s["cpu_ms_per_req_dvm"]
        ratio = f"{s_cpu / e_cpu:.2f}" if e_cpu else "-"
        answered = f"{e['answered']:>6}/{e['requests']:<7} {s['answered']:>7}/{s['requests']:<7}"
        print(
            f"{row['offered_req_per_s']:8} {answered} "
            f"{e_cpu:12} {s_cpu:13} {ratio:>11} {e['p50_ms']!s:>9} {s['p50_ms']!s:>10}"
        )
    print("CPU is user + system per request, from /proc; p50 in ms, publish to reply")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        asyncio.run(echo_dvm(sys.argv[2], sys.argv[3]))
    else:
        main()

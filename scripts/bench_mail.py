"""Mails per second from the outbox to a local SMTP server: aiosmtpd on 127.0.0.1, in its own
process (its Sink handler accepts and discards), so the server does not share our CPU thread.
Before that, the CPU cost of building one signup-code message: ours next to the plain
standard-library build it matches byte for byte (``tests/support/stdlib_mail.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dvm.accounts.decision import Mail, MailKind
from dvm.config import MailSettings
from dvm.demo.relay import free_port
from dvm.mailer.backends import SmtpBackend
from dvm.mailer.message import Sender, build_message
from dvm.mailer.templates import TemplateContext, Templates
from dvm.mailer.worker import MailWorker
from dvm.store import database, repository
from dvm.store.sealed import ParamsSeal
from tests.support.stdlib_mail import reference

SEAL = ParamsSeal(b"bench-code-secret-0123456789")


async def run(path: Path, port: int, count: int, concurrency: int) -> tuple[float, int]:
    settings = MailSettings(host="127.0.0.1", port=port, concurrency=concurrency)
    db = await database.Database(path).open()
    backend = SmtpBackend(settings)
    worker = MailWorker(
        db,
        backend,
        Templates(TemplateContext("https://x/?code={code}")),
        Sender("b@x.example"),
        settings,
        seal=SEAL,
    )
    started = time.perf_counter()
    sent = await worker.drain()
    elapsed = time.perf_counter() - started
    await backend.close()
    await db.close()
    assert sent == count, sent
    return elapsed, backend.connections_opened


def build_cost_us(count: int = 2000) -> tuple[float, float]:
    """Microseconds per message (render + build): ours, and the plain stdlib build."""
    templates = Templates(TemplateContext("https://x/?code={code}"))
    sender = Sender("b@x.example", "SIGit")
    now = int(time.time())
    params: dict[str, str | int] = {"code": "123456", "expires_at": now + 900}
    figures = []
    for build in (
        lambda r, i: build_message(r, "u@example.org", f"{i:032x}", sender, now).data,
        lambda r, i: reference(r, "u@example.org", f"{i:032x}", sender, now),
    ):
        for i in range(200):  # warm up
            build(templates.render(MailKind.SIGNUP_CODE, "u@example.org", params, now), i)
        started = time.process_time()
        for i in range(count):
            build(templates.render(MailKind.SIGNUP_CODE, "u@example.org", params, now), i)
        figures.append((time.process_time() - started) / count * 1e6)
    return figures[0], figures[1]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("SMTP server did not start")


def main() -> None:
    count = int(os.environ.get("SIGIT_BENCH_MAILS", "500"))
    ours_us, stdlib_us = build_cost_us()
    results: list[dict[str, float | int | str]] = [
        {"build": "signup code message", "ours_us": round(ours_us, 1), "stdlib_us": round(stdlib_us, 1)}
    ]
    for concurrency in (1, 4):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mail.sqlite3"
            conn = database.connect(path)
            now = int(time.time())
            with database.immediate(conn):
                for i in range(count):
                    mail = Mail(
                        MailKind.SIGNUP_CODE,
                        f"u{i}@example.org",
                        f"u{i}",
                        (("code", "123456"), ("expires_at", now + 900)),
                    )
                    repository.queue_mail(conn, mail, f"{i:032x}", None, now, seal=SEAL)
            conn.close()
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    f"127.0.0.1:{port}",
                    "-c",
                    "aiosmtpd.handlers.Sink",
                ]
            )
            try:
                wait_for_port(port)
                elapsed, connections = asyncio.run(run(path, port, count, concurrency))
            finally:
                server.terminate()
                server.wait(10)
            results.append(
                {
                    "mails": count,
                    "concurrency": concurrency,
                    "mails_per_s": round(count / elapsed),
                    "connections": connections,
                }
            )
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    build, sends = results[0], results[1:]
    print(f"{'building a message (CPU)':32} {'ours us':>8} {'plain stdlib us':>16} {'ratio':>6}")
    ratio = ours_us / stdlib_us
    print(f"{build['build']!s:32} {build['ours_us']!s:>8} {build['stdlib_us']!s:>16} {ratio:6.2f}")
    print()
    head = f"{'mails':>6} {'concurrency':>12} {'mails/s':>8} {'connections':>12}"
    print(f"{'mail to local SMTP (aiosmtpd)':32} {head}")
    for r in sends:
        row = f"{r['mails']:6} {r['concurrency']:12} {r['mails_per_s']:8} {r['connections']:12}"
        print(f"{'signup code emails':32} {row}")


if __name__ == "__main__":
    main()

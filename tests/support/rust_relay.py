"""rust-nostr's relay (``LocalRelayBuilder``, shipped in the ``nostr-sdk`` wheel) as a subprocess
on 127.0.0.1, with the same interface as the nostr-relay launcher (``dvm.demo.relay.LocalRelay``).

It differs from nostr-relay where the tests need to see it: it returns at most the newest 500
events per filter whatever ``limit`` says (the catch-up pages back), and refuses expired NIP-40
events itself. It keeps events in memory, so a restart starts empty: tests that restart a relay
and expect its events back use nostr-relay. (The bindings' LMDB store is no way out: they pass it
to the relay as a Python implementation of the database trait, called back through an event
loop, and its queries then ignored the relay's cap and order when tried.)
``auth`` ("read", "write" or "both") makes it require NIP-42 authentication for that.
Run as a script, this file is the relay process: ``python rust_relay.py PORT [AUTH]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

AUTH_MODES = {"", "read", "write", "both"}


class RustRelay:
    def __init__(self, directory: Path, *, auth: str = "") -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {sorted(AUTH_MODES)}")
        self.auth = auth
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.directory / "relay.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> RustRelay:
        """Start (or restart, empty) and wait until it accepts connections."""
        args = [sys.executable, __file__, str(self.port), self.auth]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # our own interpreter and file, fixed args
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rust-nostr relay exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rust-nostr relay did not start in time")

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the relay (a crash)."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(port: int, auth: str) -> None:
    import nostr_sdk as rn  # only the relay process needs the bindings loaded

    builder = (
        rn.LocalRelayBuilder()
        .addr("127.0.0.1")
        .port(port)
        # Its default admits 60 events a minute per connection: tests and benches send thousands.
        .rate_limit(rn.RateLimit(max_reqs=500, notes_per_minute=10_000_000))
    )
    if auth:
        mode = getattr(rn.LocalRelayBuilderNip42Mode, auth.upper())
        builder = builder.nip42(rn.LocalRelayBuilderNip42(mode=mode))
    relay = builder.build()
    await relay.run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    relay.shutdown()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))

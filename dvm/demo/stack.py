"""The demo's services in one object: a local relay, the mail catcher, ``sigit-dvm run`` as a
subprocess and (optionally) the signup page's web server, all on 127.0.0.1.

``scripts/demo`` runs it with the protocol's default PoW; the JS client's tests start it as
``python -m dvm.demo.stack --pow-bits 8,4``, which prints one JSON line (relay, DVM key, web and
SMTP ports) and keeps everything up until its stdin closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import orjson
from websockets.asyncio.client import connect

from dvm.demo.catcher import MailCatcher
from dvm.demo.local import Scalar, write_local_config
from dvm.demo.relay import LocalRelay
from dvm.demo.web import DemoWebServer, client_ready
from dvm.protocol.announcement import ANNOUNCEMENT_KIND
from dvm.relays import messages


class DemoStack:
    """Start with ``start()`` (or ``with``); ``stop()`` ends everything it started."""

    def __init__(
        self,
        workdir: Path,
        *,
        pow_bits: tuple[int, int] | None = None,
        web: bool = False,
        web_port: int = 0,
        link_template: str = "http://localhost:3000/#/verify?code={code}",
    ) -> None:
        self.workdir = workdir
        self.pow_bits = pow_bits  # (request_account/request_login, every other method)
        self.want_web = web
        self.web_port = web_port
        self.link_template = link_template
        self.relay: LocalRelay | None = None
        self.catcher: MailCatcher | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.web: DemoWebServer | None = None
        self.pubkey = ""
        self.config = workdir / "sigit-dvm.toml"

    def start(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.relay = LocalRelay(self.workdir / "relay").start()
        catcher = self.catcher = MailCatcher().start()
        link = self.link_template
        if self.want_web and client_ready():
            self.web = DemoWebServer(lambda: list(catcher.messages), self.web_port).start()
            link = self.web.url + "#/verify?code={code}"  # the code email's link opens the page
        overrides: dict[str, dict[str, Scalar]] = {
            "mail": {"from_address": "no-reply@sigit.localhost", "link_template": link}
        }
        if self.pow_bits is not None:
            signup_bits, other_bits = self.pow_bits
            overrides["service"] = {
                "pow_request_account_bits": signup_bits,
                "pow_request_login_bits": signup_bits,
                "pow_other_bits": other_bits,
            }
        self.config, _ = write_local_config(
            self.workdir,
            [self.relay.url],
            self.catcher.port,
            overrides=overrides,
            comment="Written by scripts/demo. Every setting: docs/operations.md.",
        )
        with (self.workdir / "daemon.log").open("ab") as log:
            self.daemon = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
                [sys.executable, "-m", "dvm.cli", "-c", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pubkey = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "dvm.cli", "-c", str(self.config), "pubkey"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        if self.web is not None:
            self.web.name_dvm(self.pubkey, [self.relay.url])

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the DVM's announcement is on the relay: it is connected and subscribed."""
        asyncio.run(self.wait_ready_async(timeout_s))

    async def wait_ready_async(self, timeout_s: float = 30.0) -> None:
        assert self.relay is not None
        await _wait_announced(self.relay.url, self.pubkey, timeout_s)
        await asyncio.sleep(0.3)  # the announcement goes out as the subscription is sent

    def stop(self) -> None:
        """Stop everything started, the daemon first; a step that fails does not skip the others."""
        try:
            if self.daemon is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(15)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait(5)
                self.daemon = None
        finally:
            try:
                if self.web is not None:
                    self.web.stop()
                    self.web = None
            finally:
                try:
                    if self.catcher is not None:
                        self.catcher.stop()
                        self.catcher = None
                finally:
                    if self.relay is not None:
                        self.relay.stop()
                        self.relay = None

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def describe(self) -> dict[str, object]:
        assert self.relay is not None and self.catcher is not None
        return {
            "relay": self.relay.url,
            "pubkey": self.pubkey,
            "smtp_port": self.catcher.port,
            "web": self.web.url if self.web is not None else None,
            "nip05": f"dvm@127.0.0.1:{self.web.port}" if self.web is not None else None,
            "workdir": str(self.workdir),
        }


async def _wait_announced(relay_url: str, pubkey: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    query = {"kinds": [ANNOUNCEMENT_KIND], "authors": [pubkey], "limit": 1}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError):
            async with connect(relay_url, open_timeout=2) as ws:
                await ws.send(messages.req("ready", query))
                while True:
                    msg = messages.parse_relay_message(await asyncio.wait_for(ws.recv(), 2))
                    if isinstance(msg, messages.EventMsg):
                        return
                    if isinstance(msg, messages.EoseMsg):
                        break
        await asyncio.sleep(0.2)
    raise TimeoutError("the DVM did not announce itself on the relay in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvm.demo.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="working directory (default: a new temporary one)")
    parser.add_argument("--pow-bits", default="", help="SIGNUP,OTHER minimum bits (default: the protocol's)")
    parser.add_argument("--web", action="store_true", help="also serve the signup page")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bits: tuple[int, int] | None = None
    if args.pow_bits:
        parts = [int(b) for b in args.pow_bits.split(",")]
        if len(parts) != 2:
            parser.error("--pow-bits takes two numbers: SIGNUP,OTHER")
        bits = (parts[0], parts[1])
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="sigit-stack-")).resolve()
    stack = DemoStack(workdir, pow_bits=bits, web=args.web)
    try:
        stack.start()
        stack.wait_ready()
        print(orjson.dumps(stack.describe()).decode(), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        if args.dir is None:  # a temporary directory (with the DVM key): nothing left behind
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

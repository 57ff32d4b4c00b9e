"""A local relay for the demo and the tests: the ``nostr-relay`` package (PyPI) as a subprocess
on 127.0.0.1.

Each relay gets its own config, SQLite file and HOME (gunicorn writes a control socket under
HOME) in a temp directory. ``stop()`` and ``start()`` again keep the stored events, like a relay
that crashed and came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CONFIG = """\
DEBUG: false
relay_name: sigit-dvm test relay
storage:
{storage}
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
authentication:
  enabled: {auth}
  relay_urls: ws://127.0.0.1:{port}
  actions:
    save: {save}
    query: {query}
message_timeout: 1800
subscription_limit: 32
max_limit: 6000
logging:
  version: 1
  handlers:
    console:
      class: logging.StreamHandler
      stream: ext://sys.stdout
  loggers:
    nostr_relay:
      level: WARNING
      handlers: [console]
      propagate: false
  root:
    level: WARNING
    handlers: [console]
"""


# nostr-relay's storages: its default (SQLAlchemy over SQLite), and its LMDB key-value store, which
# costs the relay less than half the CPU per event (docs/performance.md); the benchmarks use it.
STORAGE = {
    "sqlite": "  sqlalchemy.url: sqlite+aiosqlite:///{dir}/relay.sqlite3",
    "lmdb": (
        "  class: nostr_relay.storage.kv.LMDBStorage\n  path: {dir}/relay.lmdb\n"
        "  map_size: 1073741824\n  metasync: false"
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRelay:
    def __init__(
        self,
        directory: Path,
        *,
        auth: bool = False,
        query_roles: str = "a",
        storage: str = "sqlite",
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.auth = auth
        self.query_roles = query_roles  # with auth: "w" lets only keys given that role read
        if storage not in STORAGE:
            raise ValueError(f"relay storage must be one of {sorted(STORAGE)}")
        self.storage = storage
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.directory / "relay.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> LocalRelay:
        """Start (or restart, keeping stored events) and wait until it accepts connections."""
        config = self.directory / "relay.yaml"
        config.write_text(
            CONFIG.format(
                storage=STORAGE[self.storage].format(dir=self.directory),
                port=self.port,
                auth=str(self.auth).lower(),
                save="a",
                query=self.query_roles,
            )
        )
        exe = Path(sys.executable).parent / "nostr-relay"
        env = dict(os.environ, HOME=str(self.directory))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 (our own venv executable, fixed args)
                [str(exe), "-c", str(config), "serve"],
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nostr-relay exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nostr-relay did not start in time")

    def grant(self, pubkey: str, roles: str) -> None:
        """Give a key roles (e.g. "w") in the relay's authentication table."""
        exe = Path(sys.executable).parent / "nostr-relay"
        config = self.directory / "relay.yaml"
        subprocess.run(  # noqa: S603 (our own venv executable, fixed args)
            [str(exe), "-c", str(config), "role", "set", "-p", pubkey, "-r", roles],
            check=True,
            capture_output=True,
            env=dict(os.environ, HOME=str(self.directory)),
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the whole relay process group (a crash)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
            self.proc = None


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, interval_s: float = 0.05
) -> None:
    """Poll ``predicate`` until it is true, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval_s)
    raise TimeoutError("condition not met in time")

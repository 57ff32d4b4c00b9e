"""Opening batches of events (verify, decrypt, decode) in a worker process.

Opening is pure and costs about a third of a request's CPU. In a worker process it runs on the
second core while the daemon commits the previous batch; inline (``workers = 0``) it runs in the
daemon's database call. The worker holds its own copy of the DVM key, handed over once at
start through the process pipe, never through the environment or a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from dvm.errors import NostrError
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.protocol.intake import Incoming, IntakeRules, open_request

_worker: tuple[Encryptor, IntakeRules] | None = None


def _init_worker(secret_hex: str, rules: IntakeRules, parent: int) -> None:
    global _worker  # noqa: PLW0603 (one worker process, one key: set once at its start)
    _worker = (Encryptor(SecretKey(bytes.fromhex(secret_hex))), rules)
    # ``parent`` comes from the daemon itself: if it died before this ran, getppid() already differs.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A daemon killed with SIGKILL cannot stop its worker: the worker notices and exits."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _open_in_worker(events: Sequence[Event], now: int) -> list[Incoming | NostrError]:
    assert _worker is not None, "worker not initialised"
    encryptor, rules = _worker
    opened: list[Incoming | NostrError] = []
    for event in events:
        try:
            opened.append(open_request(event, encryptor, rules, now))
        except NostrError as exc:
            opened.append(exc)
    return opened


class Opener:
    """``await opener.open(events, now)``; with ``workers == 0`` it returns None (open inline)."""

    def __init__(self, key: SecretKey, rules: IntakeRules, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            picklable = dataclasses.replace(rules, pow_bits=dict(rules.pow_bits))
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
                initializer=_init_worker,
                initargs=(key.secret_bytes().hex(), picklable, os.getpid()),
            )

    async def open(self, events: Sequence[Event], now: int) -> list[Incoming | NostrError] | None:
        if self._pool is None:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _open_in_worker, list(events), now)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

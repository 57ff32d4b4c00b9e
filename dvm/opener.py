"""The open stage's engine: verify, decrypt and decode a batch, in a worker process or inline.

Opening is pure (:func:`dvm.protocol.intake.open_batch`) and costs about a third of a request's
CPU. A batch of ``min_batch`` or more goes to a worker process, which opens it on the second core
while the daemon commits the previous batch; a smaller batch, or every batch with ``workers = 0``,
is opened inline (a round trip to the worker costs more than opening a few events). The worker
holds its own copy of the DVM key, handed over once at start through the process pipe, never
through the environment or a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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
from dvm.protocol.intake import Incoming, IntakeRules, open_batch

log = logging.getLogger("sigit.opener")

Opened = list[Incoming | NostrError]
"""A batch after verify, decrypt and decode, in order: a request, or why it is dropped."""

WORKER_MIN_BATCH = 4

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


def _open_in_worker(events: Sequence[Event], now: int) -> Opened:
    assert _worker is not None, "worker not initialised"
    encryptor, rules = _worker
    return open_batch(events, encryptor, rules, now)


class Opener:
    """``await opener.open(events, now)``: the opened batch, from the worker or inline."""

    def __init__(
        self, key: SecretKey, rules: IntakeRules, workers: int, min_batch: int = WORKER_MIN_BATCH
    ) -> None:
        self.encryptor = Encryptor(key)
        self.rules = rules
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            picklable = dataclasses.replace(rules, pow_bits=dict(rules.pow_bits))
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
                initializer=_init_worker,
                initargs=(key.secret_bytes().hex(), picklable, os.getpid()),
            )

    async def start(self) -> None:
        """Start the worker now, not on the first busy batch."""
        if self._pool is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, _open_in_worker, [], 0)

    async def open(self, events: Sequence[Event], now: int) -> Opened:
        if self._pool is not None and len(events) >= self.min_batch:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._pool, _open_in_worker, list(events), now)
            except Exception as exc:  # a dead worker: this batch is opened inline instead
                log.error("opening worker failed (%s); opening inline", type(exc).__name__)
        return open_batch(events, self.encryptor, self.rules, now)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

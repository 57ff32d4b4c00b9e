"""Reconnect and retry delays: exponential with jitter, injected so tests can shorten them."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base_s * factor**n`` capped at ``max_s``, each delay scaled by ``1 +- jitter``."""

    base_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2

    def delays(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        delay = self.base_s
        while True:
            yield max(0.0, min(self.max_s, delay) * (1 + self.jitter * (2 * rng() - 1)))
            delay = min(self.max_s, delay * self.factor)

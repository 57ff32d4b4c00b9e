"""The one back-off policy: exponential with jitter, injected so tests can shorten it.

Relay reconnects, reply republishing, a failing database batch and mail retries all use it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base_s * factor**attempt`` capped at ``max_s``, each delay scaled by ``1 +- jitter``."""

    base_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``attempt`` (0 for the first retry)."""
        exponent = min(max(0, attempt), 64)  # past the cap long before; keeps the float finite
        raw = min(self.max_s, self.base_s * self.factor**exponent)
        return max(0.0, raw * (1 + self.jitter * (2 * rng() - 1)))

    def delays(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """``delay(0)``, ``delay(1)``, ... for a loop that retries until it succeeds."""
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1

"""Per-key request limits: a token bucket per (verified) pubkey, bounded in memory.

Checked after the signature is verified, so nobody can spend another key's budget with events of
their own; a copy of the key's own signed events, replayed through a relay that did not hold it
yet, does count (a client signing with one long-lived key exposes that, one with fresh keys per
request does not). Requests over
the limit are dropped without an answer: answering a flood would cost the crypto the limit saves.
A bucket that has refilled is the same as no bucket, so it is dropped: memory follows the keys
active in the last ``burst / per_s`` seconds, not every key ever seen.
"""

from __future__ import annotations

from collections import OrderedDict


class KeyRateLimiter:
    def __init__(self, burst: int, per_s: float, capacity: int = 100_000) -> None:
        self.burst = burst
        self.per_s = per_s
        self._capacity = capacity
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key`` if it has one."""
        if self.burst <= 0:
            return True
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)
        self._drop_full(now)
        return allowed

    def _drop_full(self, now: float) -> None:
        """Drop buckets, oldest use first, that are certainly full again (a few per call)."""
        refill_s = self.burst / self.per_s if self.per_s > 0 else float("inf")
        while self._buckets:
            key, (_, at) = next(iter(self._buckets.items()))
            if now - at < refill_s:
                return
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

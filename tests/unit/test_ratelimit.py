"""The per-key token bucket."""

from __future__ import annotations

from dvm.ratelimit import KeyRateLimiter


def test_burst_then_refill_per_key():
    limiter = KeyRateLimiter(burst=3, per_s=1.0)
    assert [limiter.allow("a", 100.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 100.0)  # other keys have their own budget
    assert not limiter.allow("a", 100.5)
    assert limiter.allow("a", 101.1)


def test_memory_is_bounded_and_zero_burst_disables():
    limiter = KeyRateLimiter(burst=2, per_s=1.0, capacity=100)
    for i in range(1000):
        limiter.allow(f"k{i}", 0.0)
    assert len(limiter) == 100
    assert all(KeyRateLimiter(burst=0, per_s=0).allow("x", 0.0) for _ in range(10))


def test_buckets_that_refilled_are_dropped_so_memory_settles():
    limiter = KeyRateLimiter(burst=4, per_s=2.0)  # empty to full in 2 s
    for i in range(500):
        limiter.allow(f"k{i}", 100.0)
    assert len(limiter) == 500
    limiter.allow("late", 101.0)  # the others are not full yet
    assert len(limiter) == 501
    limiter.allow("later", 102.5)  # everyone from t=100 is full again: dropped
    assert len(limiter) == 2
    assert [limiter.allow("k1", 102.5) for _ in range(5)] == [True] * 4 + [False]  # a fresh budget

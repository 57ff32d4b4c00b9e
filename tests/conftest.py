"""Shared pytest setup."""

from __future__ import annotations

import gc


def pytest_sessionfinish(session, exitstatus):
    # nostr-sdk's uniffi objects must be freed while the interpreter is still whole, or their
    # __del__ prints noise at shutdown.
    gc.collect()

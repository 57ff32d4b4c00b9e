"""Expected outages logged as episodes, not as one line (or traceback) per failed try.

A locked or stopped database, a relay that is down, an SMTP server that does not answer: the
daemon retries each by itself, so a log line per retry only buries what matters. An
:class:`Outage` says WARNING once when the failures start, a reminder at most every
``reminder_s`` while they last, and INFO once when the dependency works again, with how long and
how many tries failed. Anything unexpected is still logged by its caller, with its traceback.

Tries may have a ``source`` (the database's operations): then only a source that failed can end
the outage by working again. A database locked by another process still answers reads; that a
read worked says nothing about the writes that were failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REMINDER_S = 60.0
"""While an outage lasts, a WARNING reminder at most this often."""


class Outage:
    """One dependency's state, up or down, as the log tells it."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        reminder_s: float = REMINDER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what
        self.reminder_s = reminder_s
        self._clock = clock
        self.since: float | None = None  # when the failures started (None: up)
        self.failures = 0
        self._told_at = 0.0
        self._reason = ""
        self._sources: set[str] = set()  # what failed during this outage

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, reason: str, source: str = "") -> None:
        """A try failed for an expected reason (one line, no secret, no address)."""
        now = self._clock()
        self.failures += 1
        self._sources.add(source)
        if self.since is None:
            self.since, self._told_at, self.failures, self._reason = now, now, 1, reason
            self.log.warning(
                "%s unavailable: %s (retrying; a line follows when it is back)", self.what, reason
            )
            return
        if now - self._told_at >= self.reminder_s:
            self._told_at = now
            self.log.warning(
                "%s still unavailable after %.0f s (%d failed tries): %s",
                self.what,
                now - self.since,
                self.failures,
                reason,
            )
        self._reason = reason

    def ok(self, source: str = "") -> None:
        """A try worked: the outage, if there was one and ``source`` had failed in it, is over."""
        if self.since is None or source not in self._sources:
            return
        self.log.info(
            "%s back after %.0f s (%d failed tries; last: %s)",
            self.what,
            self._clock() - self.since,
            self.failures,
            self._reason,
        )
        self.since, self.failures = None, 0
        self._sources.clear()


def one_line(text: str) -> str:
    """A message fit for one log line: its lines joined (libpq's errors have several)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())

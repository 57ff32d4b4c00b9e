"""Telling the operator when a busy domain's price bites (docs/threat-model.md).

Past a domain's hourly share of codes to unproven addresses (or everyone's), new requests for
such codes must carry more proof of work (``pow_too_low`` with ``required_bits``, decided by the
account rules). That is the service working as designed, but it also means real people pay a
few seconds more: an admin wants to know when it starts, how long it lasts and how often it
asks. So: a counter per method (``sigit_priced_requests_total``), one WARNING when prices start
being asked, a reminder at most every ``reminder_s`` while they are, and one INFO once none has
been asked for ``quiet_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("sigit.prices")


class PriceWatch:
    """Counts the requests asked to pay a price and logs the episodes."""

    def __init__(
        self,
        *,
        reminder_s: float = 600.0,
        quiet_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reminder_s, self.quiet_s, self._clock = reminder_s, quiet_s, clock
        self.since: float | None = None  # when prices started being asked (None: not now)
        self._last = 0.0
        self._told_at = 0.0
        self.asked = 0  # requests asked to pay in this episode

    def priced(self, count: int) -> None:
        """``count`` requests were just answered with a price."""
        now = self._clock()
        self.asked += count
        self._last = now
        if self.since is None:
            self.since, self._told_at = now, now
            log.warning(
                "a busy domain (or all signups together) passed its hourly share of codes: "
                "new codes to unproven addresses there now cost more proof of work "
                "(sigit_priced_requests_total counts the requests asked to pay)"
            )
        elif now - self._told_at >= self.reminder_s:
            self._told_at = now
            log.warning("busy-domain prices still asked: %d requests in %.0f s", self.asked, now - self.since)

    def tick(self) -> None:
        """Called now and then: ends an episode once no price has been asked for ``quiet_s``."""
        now = self._clock()
        if self.since is not None and now - self._last >= self.quiet_s:
            log.info(
                "busy-domain prices no longer asked (%d requests paid or gave up in %.0f s)",
                self.asked,
                self._last - self.since,
            )
            self.since, self.asked = None, 0

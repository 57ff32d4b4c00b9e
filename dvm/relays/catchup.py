"""Paging back through a relay's stored requests, so a relay that caps results loses none.

NIP-01 lets a relay cap what one filter returns: rust-nostr's relay returns the newest 500 events
whatever ``limit`` says, and others cap too. The live subscription (``since`` = the resume point)
gets the newest page; this state machine asks for the pages before it, each with ``until`` = the
oldest ``created_at`` of the page before, until a page brings nothing new below the resume point.

``until`` is inclusive, so each page starts again at the previous page's oldest second: events of
that second already handed on are skipped by id. A page that brings nothing new moves ``until``
one second back, so paging always ends (``until`` only falls, or each page brings new events).
Paging stops at an empty page, not at a page shorter than some size: a relay's cap is not known,
and one more request that returns nothing is cheap. What NIP-01 paging cannot reach is a second
holding more events than the relay's page; a request dated that second still comes live if the
daemon was up. Memory: the ids of one second, at most ``max_same_second`` of them.

Sans-I/O: the connection feeds events and page ends in and sends the filters that come out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_SAME_SECOND = 10_000
"""Ids of one second remembered to skip copies; past this the rest of that second is skipped."""


@dataclass(frozen=True, slots=True)
class CatchupStats:
    """What one catch-up did, for the log."""

    pages: int  # pages asked for besides the live subscription's stored events
    handed_on: int  # stored events passed on (new to this catch-up)
    oldest: int | None  # the oldest created_at reached, or None if nothing was stored
    complete: bool  # ended because nothing older is stored (not stopped early)


class Catchup:
    """One catch-up on one connection, from the live subscription's filter (with its ``since``).

    Feed :meth:`take` every event of the page being read (first the live subscription's stored
    events, then each page's), and call :meth:`end_of_page` at its EOSE: it returns the next
    page's filter, or None when the catch-up is over (:attr:`finished`).
    """

    def __init__(
        self, live_filter: Mapping[str, Any], page_limit: int, max_same_second: int = MAX_SAME_SECOND
    ) -> None:
        self._base = {k: v for k, v in live_filter.items() if k not in ("until", "limit")}
        since = live_filter.get("since", 0)
        self.since = since if type(since) is int else 0
        self.page_limit = page_limit
        self._max_same_second = max_same_second
        self.until: int | None = None  # of the page being read; None for the live subscription's
        self._boundary: set[str] = set()  # ids handed on at second ``until`` by earlier pages
        self._oldest: int | None = None  # the oldest created_at in range on this page
        self._oldest_ids: set[str] = set()  # ids seen at ``_oldest`` on this page
        self._overflow = False  # more ids at ``_oldest`` than we remember
        self._new = 0  # events handed on from this page
        self._reached: int | None = None
        self.pages = 0
        self.handed_on = 0
        self.finished = False
        self.complete = False

    @property
    def stats(self) -> CatchupStats:
        return CatchupStats(self.pages, self.handed_on, self._reached, self.complete)

    def take(self, event: Mapping[str, Any]) -> bool:
        """An event of the page being read: True when it is new to this catch-up (pass it on).

        Copies of events an earlier page handed on, events outside the page asked for (a relay
        that ignores ``until``) and events without an integer ``created_at`` or a string id are not.
        """
        created_at, event_id = event.get("created_at"), event.get("id")
        if self.finished or type(created_at) is not int or not isinstance(event_id, str):
            return False
        if self.until is not None:
            if not self.since <= created_at <= self.until:
                return False
            if created_at == self.until and event_id in self._boundary:
                self._note(created_at, event_id)
                return False
        elif created_at < self.since:  # the live subscription's: passed on, as it always was
            return True
        self._note(created_at, event_id)
        self._new += 1
        self.handed_on += 1
        return True

    def _note(self, created_at: int, event_id: str) -> None:
        if self._oldest is None or created_at < self._oldest:
            self._oldest, self._oldest_ids, self._overflow = created_at, {event_id}, False
        elif created_at == self._oldest:
            if len(self._oldest_ids) < self._max_same_second:
                self._oldest_ids.add(event_id)
            else:
                self._overflow = True

    def end_of_page(self, more: bool = True) -> dict[str, Any] | None:
        """The page being read has ended (EOSE): the next page's filter, or None when done.

        ``more=False`` (out of time): no next page; :attr:`complete` says whether one was needed.
        """
        if self.finished:
            return None
        oldest, new, until = self._oldest, self._new, self.until
        ids, overflow = self._oldest_ids, self._overflow
        self._oldest, self._oldest_ids, self._overflow, self._new = None, set(), False, 0
        if oldest is None:  # an empty page: nothing older is stored
            self.complete = True
            self.stop()
            return None
        self._reached = oldest if self._reached is None else min(self._reached, oldest)
        boundary: set[str] = set()
        if new == 0 and until is not None:  # only copies of the last second: step below it
            next_until = until - 1
        elif overflow:  # a second too full to remember: it was read whole (no relay caps this high)
            next_until = oldest - 1
        elif oldest == until:  # new events of the same second (a relay reading it in parts)
            boundary = self._boundary | ids
            next_until = oldest
            if len(boundary) > self._max_same_second:
                next_until, boundary = oldest - 1, set()
        else:
            next_until, boundary = oldest, ids
        if next_until < self.since:
            self.complete = True
            self.stop()
            return None
        if not more:
            self.stop()
            return None
        self.until, self._boundary = next_until, boundary
        self.pages += 1
        return {**self._base, "until": next_until, "limit": self.page_limit}

    def stop(self) -> None:
        """End the catch-up (done, or early: a deadline, a refused page): no more pages."""
        self.finished = True
        self._boundary = set()

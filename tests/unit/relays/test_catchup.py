"""The catch-up's paging against simulated relays that cap each filter's results: every stored
event in range is handed on exactly once, and paging always ends."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dvm.relays.catchup import Catchup

SINCE = 1_000


def stored(times: list[int]) -> list[dict]:
    return [{"id": f"{i:064x}", "created_at": t} for i, t in enumerate(times)]


def answer(
    events: list[dict], flt: dict, cap: int, ignore_until: bool = False, shuffle: random.Random | None = None
) -> list[dict]:
    """A NIP-01 relay: newest first (ties by id, as rust-nostr and strfry do, or in any order
    with ``shuffle``), at most ``cap`` whatever ``limit`` says (or ``limit`` if lower)."""
    until = flt.get("until")
    found = [
        e
        for e in events
        if e["created_at"] >= flt["since"] and (until is None or ignore_until or e["created_at"] <= until)
    ]
    if shuffle is not None:
        shuffle.shuffle(found)
        found.sort(key=lambda e: -e["created_at"])  # stable: ties stay in the shuffled order
    else:
        found.sort(key=lambda e: (-e["created_at"], e["id"]))
    return found[: min(cap, flt.get("limit", cap))]


def catch_up(events: list[dict], cap: int, page_limit: int = 500, max_pages: int = 10_000, **kw):
    """Run a catch-up to its end; (ids handed on, in order; pages asked for)."""
    live = {"kinds": [5780], "#p": ["ab" * 32], "since": SINCE}
    catchup = Catchup(live, page_limit)
    handed = [e["id"] for e in answer(events, live, cap, **kw) if catchup.take(e)]
    flt = catchup.end_of_page()
    while flt is not None:
        assert catchup.pages <= max_pages, "paging did not end"
        assert flt["since"] == SINCE and flt["kinds"] == [5780] and flt["limit"] == page_limit
        handed += [e["id"] for e in answer(events, flt, cap, **kw) if catchup.take(e)]
        flt = catchup.end_of_page()
    assert catchup.finished
    return handed, catchup


def test_a_capped_relay_is_paged_back_to_the_resume_point():
    events = stored([SINCE + i for i in range(1_200)])  # one a second
    handed, catchup = catch_up(events, cap=500)
    assert sorted(handed) == sorted(e["id"] for e in events)
    assert len(handed) == len(set(handed))
    assert catchup.stats.complete and catchup.stats.oldest == SINCE
    assert catchup.pages <= 5


def test_events_sharing_the_boundary_second_are_neither_lost_nor_handed_on_twice():
    times = [SINCE + 10] * 30 + [SINCE + 5] * 700 + [SINCE + 1] * 3  # pages cut inside seconds
    events = stored(times)
    handed, catchup = catch_up(events, cap=500)
    assert len(handed) == len(set(handed))
    assert {e["id"] for e in events if e["created_at"] != SINCE + 5} <= set(handed)
    # The 700 of one second exceed the relay's page: 500 of them can be reached, and no more.
    assert sum(1 for e in events if e["created_at"] == SINCE + 5 and e["id"] in set(handed)) == 500
    assert catchup.stats.complete


def test_nothing_stored_asks_for_no_page_and_an_uncapped_relay_for_little_more():
    assert catch_up([], cap=500)[1].pages == 0
    events = stored([SINCE + i % 50 for i in range(700)])
    handed, catchup = catch_up(events, cap=10**9)
    assert sorted(handed) == sorted(e["id"] for e in events)
    assert catchup.pages <= 2  # the boundary second again, then an empty page


def test_a_relay_that_ignores_until_ends_the_catch_up_instead_of_looping():
    events = stored([SINCE + i for i in range(1_000)])
    handed, catchup = catch_up(events, cap=500, ignore_until=True)
    assert len(handed) == len(set(handed)) == 500
    assert catchup.pages <= 2 and catchup.stats.complete


def test_out_of_time_stops_after_the_page_and_says_it_is_incomplete():
    live = {"kinds": [5780], "since": SINCE}
    catchup = Catchup(live, 500)
    events = stored([SINCE + i for i in range(1_000)])
    for e in answer(events, live, 500):
        assert catchup.take(e)
    assert catchup.end_of_page(more=False) is None
    assert catchup.finished and not catchup.stats.complete
    assert catchup.stats.oldest == SINCE + 500
    assert not catchup.take(events[0])  # a late event of a stopped catch-up is not taken


def test_malformed_events_are_not_taken_and_do_not_move_the_boundary():
    catchup = Catchup({"since": SINCE}, 500)
    assert not catchup.take({"id": "x", "created_at": "1500"})
    assert not catchup.take({"id": 7, "created_at": 1500})
    assert not catchup.take({"id": "x", "created_at": True})
    assert catchup.end_of_page() is None and catchup.stats.complete


def test_one_second_too_full_to_remember_is_skipped_whole_not_looped_on():
    events = stored([SINCE + 3] * 5 + [SINCE + 1] * 50)
    live = {"since": SINCE}
    catchup = Catchup(live, 500, max_same_second=10)
    handed = [e["id"] for e in answer(events, live, 10**9) if catchup.take(e)]
    flt = catchup.end_of_page()
    assert flt is not None and flt["until"] == SINCE  # below the full second, not stuck on it
    assert len(handed) == 55


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(SINCE - 5, SINCE + 40), max_size=400),
    cap=st.integers(1, 60),
    page_limit=st.integers(1, 80),
    seed=st.one_of(st.none(), st.integers(0, 2**32)),
)
def test_every_reachable_event_is_handed_on_once_and_paging_ends(times, cap, page_limit, seed):
    events = stored(times)
    shuffle = None if seed is None else random.Random(seed)
    handed, catchup = catch_up(events, cap, page_limit, max_pages=5 * len(events) + 100, shuffle=shuffle)
    assert len(handed) == len(set(handed))
    page = min(cap, page_limit)
    per_second: dict[int, int] = {}
    for e in events:
        per_second[e["created_at"]] = per_second.get(e["created_at"], 0) + 1
    # Reachable: every event of a second that fits in one page.
    must = {e["id"] for e in events if e["created_at"] >= SINCE and per_second[e["created_at"]] <= page}
    assert must <= set(handed)
    assert catchup.stats.complete

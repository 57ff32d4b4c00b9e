"""Which daemon opens each request (dvm.ownership): the split, parking, and the takeover rule."""

from __future__ import annotations

import asyncio
import random
from functools import partial

from dvm.nostr.event import Event
from dvm.ownership import CHECK_AFTER_S, Ownership, owner_of
from dvm.store import members


def ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.randbytes(32).hex() for _ in range(n)]


def test_every_event_has_one_owner_and_a_member_leaving_moves_only_its_share():
    live = ("a", "b", "c")
    events = ids(3000)
    owners = {e: owner_of(e, live) for e in events}
    shares = {m: sum(1 for o in owners.values() if o == m) for m in live}
    assert all(800 < n < 1200 for n in shares.values()), shares  # about a third each
    after = {e: owner_of(e, ("a", "c")) for e in events}
    assert all(after[e] == owners[e] for e in events if owners[e] != "b")
    assert {after[e] for e in events if owners[e] == "b"} == {"a", "c"}


class FakeStore:
    """What Ownership asks the database: the live members and which events were decided."""

    shared = True
    is_open = True

    def __init__(self, live: tuple[str, ...]) -> None:
        self.live = live
        self.decided: set[str] = set()
        self.left: list[str] = []

    async def run(self, fn: partial) -> object:
        if fn.func in (members.beat, members.join):
            return self.live
        if fn.func is members.decided:
            return {e for e in fn.keywords["event_ids"] if e in self.decided}
        if fn.func is members.leave:
            self.left.append(fn.keywords["member"])
            return None
        raise AssertionError(fn)


def event(event_id: str) -> Event:
    return Event(event_id, "ee" * 32, 1, 5780, (), "", "ff" * 64)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle(ownership: Ownership) -> None:
    """A beat, and the hand-back task it may start."""
    await ownership.beat()
    for _ in range(3):
        await asyncio.sleep(0)


def collect(ownership: Ownership) -> list[str]:
    """The ids ``ownership`` hands back to the pipeline."""
    handed: list[str] = []

    async def handback(e: Event, relay: str) -> None:
        handed.append(e.id)

    ownership.handback = handback
    return handed


async def test_another_members_events_are_parked_and_dropped_once_decided_copies_too():
    db, clock = FakeStore(("me", "other")), Clock()
    ownership = Ownership(db, "me", takeover_s=3.0, clock=clock)  # type: ignore[arg-type]
    handed = collect(ownership)
    await ownership.join()
    events = [event(e) for e in ids(40)]
    mine = [e for e in events if ownership.mine(e, "r1")]
    theirs = [e for e in events if e not in mine]
    assert mine and theirs and ownership.parked == len(theirs)
    db.decided = {e.id for e in theirs}
    clock.now += CHECK_AFTER_S
    await settle(ownership)
    assert ownership.parked == 0 and handed == []
    assert not any(ownership.mine(e, "r2") for e in theirs)  # a later copy from another relay
    assert ownership.parked == 0


async def test_an_undecided_event_is_taken_over_after_takeover_s_or_at_once_when_its_owner_leaves():
    db, clock = FakeStore(("me", "other")), Clock()
    ownership = Ownership(db, "me", takeover_s=3.0, clock=clock)  # type: ignore[arg-type]
    handed = collect(ownership)
    await ownership.join()
    theirs = [e for e in map(event, ids(40)) if not ownership.mine(e, "r1")]
    early, late = theirs[: len(theirs) // 2], theirs[len(theirs) // 2 :]
    clock.now += 1.0
    await settle(ownership)  # the owner may still decide them: wait
    assert handed == [] and ownership.parked == len(theirs)
    clock.now += 2.0  # takeover_s since they came: the owner is alive but never decided them
    await settle(ownership)
    assert sorted(handed) == sorted(e.id for e in theirs)
    # Parked, then the owner leaves (its row lapsed or was given back): ours at the next beat.
    handed.clear()
    for e in early + late:
        assert not ownership.mine(e, "r1")  # taken over, not settled: copies park again
    db.live = ("me",)
    clock.now += CHECK_AFTER_S
    await settle(ownership)
    assert sorted(handed) == sorted(e.id for e in theirs)
    assert ownership.members == ("me",) and all(ownership.mine(e, "r1") for e in theirs)


async def test_alone_or_with_a_full_parking_every_event_is_opened_here():
    db, clock = FakeStore(("me",)), Clock()
    ownership = Ownership(db, "me", takeover_s=3.0, capacity=5, clock=clock)  # type: ignore[arg-type]
    await ownership.join()
    events = [event(e) for e in ids(20)]
    assert all(ownership.mine(e, "r1") for e in events)
    db.live = ("me", "other")
    await ownership.beat()
    parked = [e for e in events if not ownership.mine(e, "r1")]
    assert len(parked) == 5 and ownership.parked == 5  # the rest of the other's: decided here
    await ownership.leave()
    assert db.left == ["me"]

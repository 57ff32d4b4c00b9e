"""Several daemons split the requests (dvm.ownership): a daemon leaves another live member's
requests unopened, drops those that member decides, and decides itself those it never does."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from dvm.nostr.encryption import Encryptor
from dvm.ownership import owner_of
from dvm.protocol.intake import open_request
from dvm.service import AccountService
from dvm.store import backends
from tests.support.daemon import CODE_SECRET, DVM_KEY, make_settings, signup_events, start_daemon
from tests.support.relay import wait_until

pytestmark = pytest.mark.slow


def left_to_owner(daemon, outcome: str) -> float:
    value = daemon.metrics.registry.get_sample_value(
        "sigit_requests_left_to_owner_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_live_members_requests_are_left_to_it_and_decided_here_when_it_never_does(
    tmp_path, relay, smtp, pg_url
):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=pg_url)
    settings = replace(settings, store=replace(settings.store, takeover_s=1.0))
    conn = backends.connect_any(pg_url, tmp_path / "unused")  # creates the schema
    # Another member, alive as far as its lease says: the test plays it, deciding some of its
    # requests itself and never the others (as if it never got them from its relays).
    conn.execute(
        "INSERT INTO leases (name, holder, until) VALUES ('member:other', 'other', ?)",
        (int(time.time()) + 3600,),
    )
    other = AccountService(Encryptor(DVM_KEY), CODE_SECRET, settings.service.rules())
    daemon = await start_daemon(settings)
    try:
        assert "other" in daemon.ownership.members and len(daemon.ownership.members) == 2
        events = signup_events(16, "split")
        theirs = [e for e in events if owner_of(e.id, daemon.ownership.members) == "other"]
        decided_there, never_there = theirs[: len(theirs) // 2], theirs[len(theirs) // 2 :]
        assert decided_there and never_there and len(theirs) < len(events)
        now = int(time.time())
        answers = other.commit(
            conn, [open_request(e, other.encryptor, other.rules.intake, now) for e in decided_there], now
        )
        assert all(a.outcome == "ok" for a in answers)
        for event in events:
            await daemon.pipeline.submit(event.to_dict(), "test")
        await wait_until(lambda: daemon.handled == len(events) - len(decided_there), timeout_s=30)
        # Every request decided once; the other member's decided there were never opened here.
        rows = conn.execute("SELECT event_id, outcome FROM requests").fetchall()
        assert sorted(tuple(r) for r in rows) == sorted((e.id, "ok") for e in events)
        await wait_until(lambda: left_to_owner(daemon, "decided") == len(decided_there), timeout_s=10)
        assert left_to_owner(daemon, "taken_over") == len(never_there)
        assert daemon.metrics.registry.get_sample_value(
            "sigit_requests_total", {"method": "request_account", "outcome": "ok", "replayed": "true"}
        ) in (None, 0.0)
    finally:
        await daemon.shutdown()
        conn.close()

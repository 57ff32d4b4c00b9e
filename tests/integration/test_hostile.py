"""Hostile input reaching a running daemon: each gets the right error or silence, memory stays
bounded, and legitimate requests keep being served.

nostr-relay already refuses unsigned events, so forged ones are fed in where a relay connection
hands events over (``Pipeline.submit``): a hostile or broken relay could send exactly these.
"""

from __future__ import annotations

import sqlite3

import pytest

from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import compute_id, sign_event
from dvm.nostr.keys import SecretKey
from dvm.pipeline import SEEN_CAPACITY
from dvm.protocol.client import build_request
from tests.support.daemon import DVM_KEY, make_settings, start_daemon
from tests.support.relay import LocalRelay, wait_until
from tests.support.sdk_browser import SdkBrowser
from tests.support.smtp import Catcher, start_smtp

pytestmark = pytest.mark.slow
KIND = 5780


@pytest.fixture
async def daemon(tmp_path):
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    daemon.relay_url = relay.url
    yield daemon
    await daemon.shutdown()
    smtp.stop()
    relay.stop()


def outcomes(daemon) -> dict[str, str]:
    conn = sqlite3.connect(daemon.settings.path(daemon.settings.store.path))
    try:
        return dict(conn.execute("SELECT event_id, outcome FROM requests").fetchall())
    finally:
        conn.close()


def legit(method="request_account", params=None, key=None, **kw):
    client = Encryptor(key or SecretKey.generate())
    params = {"email": f"x{SecretKey.generate().pubkey_hex[:8]}@example.org"} if params is None else params
    return build_request(client, DVM_KEY.pubkey_hex, method, params, daemon_now(), pow_bits=8, **kw)


def daemon_now() -> int:
    import time

    return int(time.time())


async def feed(daemon, event_dict):
    await daemon.pipeline.submit(event_dict, "hostile-relay")


async def test_forged_malformed_and_misaddressed_events_get_silence(daemon):
    good = legit().to_dict()
    forged = [
        good | {"id": "00" * 32},  # id does not match
        good | {"sig": "11" * 64},  # signature does not verify
        good | {"content": "x" * 200_000},  # oversized content
        good | {"tags": [["t", "x"]] * 500},  # too many tags
        good | {"pubkey": "ff" * 32},  # not a point on the curve
        {k: v for k, v in good.items() if k != "sig"},  # missing field
        good | {"kind": "5780"},  # wrong type
    ]
    other_kind = sign_event(
        SecretKey.generate(), 1, "hi", daemon_now(), [("p", DVM_KEY.pubkey_hex)]
    ).to_dict()
    not_ours = legit().to_dict()
    not_ours_event = sign_event(
        SecretKey.generate(), KIND, not_ours["content"], daemon_now(), [("p", "ab" * 32)]
    ).to_dict()
    for event in [*forged, other_kind, not_ours_event, {"not": "an event"}, []]:
        await feed(daemon, event)
    await feed(daemon, good)  # the genuine one, after all that
    await wait_until(lambda: daemon.handled == 1)
    assert outcomes(daemon) == {good["id"]: "ok"}


async def test_pow_claims_that_do_not_hold_are_answered_pow_too_low(daemon):
    key = SecretKey.generate()
    client = Encryptor(key)
    content = client.encrypt(
        DVM_KEY.pubkey, '{"method":"request_account","params":{"email":"a@example.org"}}'
    )
    now = daemon_now()
    # Claims 24 bits; find a nonce whose id has fewer than 8 real leading zero bits.
    for n in range(1000):
        tags = [("p", DVM_KEY.pubkey_hex), ("nonce", str(n), "24")]
        if nip13.leading_zero_bits(compute_id(key.pubkey_hex, now, KIND, tags, content)) < 8:
            break
    claim = sign_event(key, KIND, content, now, tags).to_dict()
    low_target = legit().to_dict()  # mined to 8 bits and committed to 8: passes
    await feed(daemon, claim)
    await feed(daemon, low_target)
    await wait_until(lambda: daemon.handled == 2)
    assert outcomes(daemon) == {claim["id"]: "pow_too_low", low_target["id"]: "ok"}


async def test_duplicates_and_replays_are_decided_once(daemon):
    event = legit().to_dict()
    for _ in range(50):
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled == 1)
    await daemon.shutdown()  # a restart: the new run remembers nothing, the database does
    again = await start_daemon(daemon.settings)
    try:
        await feed(again, event)
        await wait_until(lambda: again.handled == 1)  # answered again, from storage
    finally:
        await again.shutdown()
        await daemon.start()  # the fixture shuts it down
    assert outcomes(daemon) == {event["id"]: "ok"}
    conn = sqlite3.connect(daemon.settings.path(daemon.settings.store.path))
    assert conn.execute("SELECT count(*) FROM mail").fetchone()[0] == 1
    conn.close()


async def test_a_flood_from_one_key_is_cut_at_its_budget_and_others_are_still_served(daemon):
    key = SecretKey.generate()
    flood = [legit("resend_code", {}, key=key, expiration_s=3600 + i).to_dict() for i in range(60)]
    for event in flood:
        await feed(daemon, event)
    burst = daemon.settings.daemon.per_key_burst
    await wait_until(lambda: daemon.handled >= burst)
    await wait_until(lambda: daemon.pipeline.stats.queued == 0 and not daemon.pipeline.stats.in_progress)
    answered = outcomes(daemon)
    assert burst <= len(answered) <= burst + 2  # refill during the run may add one or two
    assert set(answered.values()) == {"no_session"}
    assert daemon.pipeline.stats.remembered <= SEEN_CAPACITY and len(daemon.pipeline.limiter) <= 1000
    assert daemon.pipeline.max_queued == daemon.settings.daemon.max_in_flight
    # A legitimate client, through the real relay, is served at once.
    async with SdkBrowser([daemon.relay_url], DVM_KEY.pubkey_hex) as browser:
        assert (await browser.call("request_account", {"email": "legit@example.org"})).code == "ok"


async def test_garbage_content_from_a_real_key_gets_bad_request(daemon):
    key = SecretKey.generate()
    now = daemon_now()
    for content in ("not encrypted at all", "A" * 200, "?iv=x", '{"method":"status"}'):
        tags = nip13.mine(key.pubkey_hex, now, KIND, [("p", DVM_KEY.pubkey_hex)], content, target=8)
        await feed(daemon, sign_event(key, KIND, content, now, tags).to_dict())
    await wait_until(lambda: daemon.handled == 4)
    assert set(outcomes(daemon).values()) == {"bad_request"}

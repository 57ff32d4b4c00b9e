"""Catch-up after downtime on both relays: more requests than a relay returns for one filter, mixed
with zero-PoW junk, are all answered exactly once on restart, and requests sent while the daemon
pages back are answered too. rust-nostr's relay returns the newest 500 events per filter; before
the catch-up paged back, the oldest requests of a downtime were never answered there."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
from websockets.asyncio.client import connect

from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event, sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.relays import messages
from tests.support.daemon import DVM_KEY, make_settings, signup_events, start_daemon
from tests.support.relay import RELAYS, RustRelay, replies_on_relay, wait_until

pytestmark = pytest.mark.slow
REQUESTS = 700  # more than rust-nostr's relay returns for one filter (500)
JUNK = 300
LIVE = 20
POW_BITS = 4
KIND = 5780
SERVICE = {  # low PoW keeps the test fast; the caps let one domain take every signup
    "pow_request_account_bits": POW_BITS,
    "pow_request_login_bits": POW_BITS,
    "pow_other_bits": POW_BITS,
    "max_codes_per_domain_per_hour": 1_000_000,
    "max_codes_per_hour": 1_000_000,
}


def signups(count: int, tag: str, first_created_at: int, per_second: int) -> list[Event]:
    """Signups from fresh keys, ``per_second`` sharing each second, so pages end inside a second."""
    return signup_events(count, tag, first_created_at, per_second, pow_bits=POW_BITS)


def junk(count: int, first_created_at: int) -> list[Event]:
    """Zero-PoW requests from fresh keys, to the DVM, interleaved in time with the signups."""
    out = []
    for i in range(count):
        key = SecretKey.generate()
        content = Encryptor(key).encrypt(DVM_KEY.pubkey, '{"method":"request_account","params":{}}')
        out.append(sign_event(key, KIND, content, first_created_at + i // 2, [("p", DVM_KEY.pubkey_hex)]))
    return out


async def publish(url: str, events: list[Event], *, authenticate: bool = False) -> None:
    """Send every event, then wait for each OK: every one must be stored. With ``authenticate``,
    answer the relay's NIP-42 challenge first (rust-nostr's relay sends it on the first EVENT)."""
    async with connect(url, max_size=2**22) as ws:
        if authenticate:
            await ws.send(messages.event_raw(events[0].to_json()))
            challenge, refused = None, False
            while challenge is None or not refused:
                msg = messages.parse_relay_message(await ws.recv())
                challenge = msg.challenge if isinstance(msg, messages.AuthMsg) else challenge
                refused = refused or isinstance(msg, messages.OkMsg)
            tags = [("relay", url), ("challenge", challenge)]
            auth = sign_event(SecretKey.generate(), 22242, "", int(time.time()), tags)
            await ws.send(messages.auth(auth.to_dict()))
            assert messages.parse_relay_message(await ws.recv()) == messages.OkMsg(auth.id, True, "")
        for event in events:
            await ws.send(messages.event_raw(event.to_json()))
        refused = []
        for _ in events:
            msg = messages.parse_relay_message(await ws.recv())
            if isinstance(msg, messages.OkMsg) and not msg.accepted:
                refused.append(msg.message)
        assert not refused, refused[:3]


async def stored_requests(url: str) -> int:
    """What the relay returns for the daemon's filter in one subscription."""
    count = 0
    async with connect(url, max_size=2**24) as ws:
        await ws.send(messages.req("count", {"kinds": [KIND], "#p": [DVM_KEY.pubkey_hex]}))
        async for raw in ws:
            msg = messages.parse_relay_message(raw)
            if isinstance(msg, messages.EoseMsg):
                return count
            count += isinstance(msg, messages.EventMsg)
    return count


@pytest.mark.parametrize("relay", RELAYS, indirect=True)
async def test_a_downtime_longer_than_a_relays_page_is_answered_whole_and_once(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, **SERVICE)
    daemon = await start_daemon(settings)
    await daemon.shutdown()
    # Down: signups five to a second over 140 s, junk two to a second over the same span.
    start = int(time.time()) - 200
    requests = signups(REQUESTS, "down", start, per_second=5)
    await publish(relay.url, [e for pair in zip(requests, junk(JUNK, start), strict=False) for e in pair])
    await publish(relay.url, requests[JUNK:])
    if isinstance(relay, RustRelay):
        assert await stored_requests(relay.url) == 500  # what one subscription used to get

    daemon = await start_daemon(settings, live=False)
    try:
        # Sent while the daemon pages back: the live subscription takes them.
        live = signups(LIVE, "live", int(time.time()), per_second=LIVE)
        await publish(relay.url, live)
        (conn,) = daemon.pool.connections.values()
        await wait_until(lambda: daemon.handled >= REQUESTS + LIVE, timeout_s=90)
        await wait_until(conn.paged_back.is_set, timeout_s=30)
        await wait_until(lambda: len(smtp.messages) >= REQUESTS + LIVE, timeout_s=60)
        await asyncio.sleep(0.5)  # anything answered twice would show by now
        await wait_until(lambda: daemon.publisher.idle)
        assert daemon.handled == REQUESTS + LIVE
        stats = conn.last_catchup
        assert stats is not None and stats.complete and stats.pages >= 1
        # Junk was dropped as it came, each event once, before a signature check or the queue.
        assert daemon.metrics.registry.get_sample_value("sigit_events_dropped_total") == JUNK
    finally:
        await daemon.shutdown()

    ids = [e.id for e in requests + live]
    replies = await replies_on_relay(relay.url, ids)
    assert sorted(replies) == sorted(ids), f"{len(set(ids) - set(replies))} request(s) never answered"
    assert all(len(r) == 1 for r in replies.values())
    recipients = collections.Counter(m["To"] for m in smtp.messages)
    assert len(recipients) == REQUESTS + LIVE and set(recipients.values()) == {1}


@pytest.mark.parametrize("relay", ["nostr-relay"], indirect=True)  # rust-nostr's hides it itself
async def test_a_request_that_expired_during_downtime_is_not_answered(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, **SERVICE)
    daemon = await start_daemon(settings)
    await daemon.shutdown()
    now = int(time.time())
    client = Encryptor(SecretKey.generate())
    params = {"email": "gave.up@example.org"}
    expired = build_request(
        client, DVM_KEY.pubkey_hex, "request_account", params, now, pow_bits=POW_BITS, expiration_s=1
    )
    control = signups(1, "control", now, per_second=1)
    await publish(relay.url, [expired, *control])
    await asyncio.sleep(2.5)
    assert await stored_requests(relay.url) == 2  # the relay still hands the expired one out

    daemon = await start_daemon(settings)
    try:
        await wait_until(lambda: daemon.handled == 1)
        await wait_until(lambda: daemon.publisher.idle)
        await asyncio.sleep(0.5)
        assert daemon.handled == 1
    finally:
        await daemon.shutdown()
    assert set(await replies_on_relay(relay.url, [expired.id, control[0].id])) == {control[0].id}
    assert [m["To"] for m in smtp.messages] == ["control0@example.org"]


async def test_a_relay_that_asks_for_auth_mid_catch_up_still_gets_paged_back_whole(tmp_path, smtp):
    """rust-nostr's relay requiring NIP-42 for writes challenges the daemon when it publishes its
    announcement, while the catch-up runs: the subscription the daemon sends again after AUTH
    must neither restart nor end the pages under way."""
    relay = RustRelay(tmp_path / "relay", auth="write").start()
    try:
        settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, **SERVICE)
        daemon = await start_daemon(settings)
        await daemon.shutdown()
        requests = signups(REQUESTS, "auth", int(time.time()) - 200, per_second=5)
        await publish(relay.url, requests, authenticate=True)
        daemon = await start_daemon(settings, live=False)
        try:
            (conn,) = daemon.pool.connections.values()
            await wait_until(lambda: daemon.handled >= REQUESTS, timeout_s=90)
            await wait_until(conn.paged_back.is_set, timeout_s=30)
            assert conn.last_catchup is not None and conn.last_catchup.complete
            # Replies refused before the daemon's AUTH went through are published again.
            ids = [e.id for e in requests]
            deadline = time.monotonic() + 30
            while len(replies := await replies_on_relay(relay.url, ids)) < REQUESTS:
                assert time.monotonic() < deadline, f"{REQUESTS - len(replies)} repl(ies) not published"
                await asyncio.sleep(0.5)
            assert daemon.handled == REQUESTS and all(len(r) == 1 for r in replies.values())
        finally:
            await daemon.shutdown()
    finally:
        relay.stop()

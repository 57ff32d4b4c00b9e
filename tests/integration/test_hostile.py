"""Hostile input reaching a running daemon: each gets the right error or silence, memory stays
bounded, and legitimate requests keep being served.

nostr-relay already refuses unsigned events, so forged ones are fed in where a relay connection
hands events over (``Pipeline.submit``): a hostile or broken relay could send exactly these.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from dvm.daemon import Daemon, Secrets
from dvm.errors import DVMError
from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import compute_id, parse_event_json, sign_event
from dvm.nostr.keys import SecretKey
from dvm.pipeline import SEEN_CAPACITY
from dvm.protocol.client import build_request
from tests.support.daemon import CODE_SECRET, DVM_KEY, make_settings, start_daemon
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


def legit(method="request_account", params=None, key=None, created_at=None, **kw):
    client = Encryptor(key or SecretKey.generate())
    params = {"email": f"x{SecretKey.generate().pubkey_hex[:8]}@example.org"} if params is None else params
    now = created_at or daemon_now()
    return build_request(client, DVM_KEY.pubkey_hex, method, params, now, pow_bits=8, **kw)


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


async def replies_on_relay(daemon, event_ids: list[str]) -> dict[str, str]:
    """The outcome of each reply the daemon put on the relay for ``event_ids``: the decrypted
    error code or "ok". Events it stayed silent on are missing."""
    import datetime
    import json

    import nostr_sdk as rn

    query = (
        rn.Filter()
        .kind(rn.Kind(KIND + 1000))
        .author(rn.PublicKey.parse(DVM_KEY.pubkey_hex))
        .events([rn.EventId.parse(e) for e in event_ids])
    )
    async with SdkBrowser([daemon.relay_url], DVM_KEY.pubkey_hex) as browser:
        found = await browser.client.fetch_events(
            rn.ReqTarget.auto([query]), timeout=datetime.timedelta(seconds=3)
        )
    answered = {}
    for reply in found:
        event = parse_event_json(reply.as_json())
        request = event.first_tag("e")[1]
        key = KEYS[request]
        text, _ = Encryptor(key).decrypt(DVM_KEY.pubkey, event.content)
        body = json.loads(text) if text else {}
        answered[request] = body["error"]["code"] if "error" in body else "ok"
    return answered


KEYS: dict[str, SecretKey] = {}  # request id -> the key that signed it, to read its reply


def signed(key: SecretKey, content: str, tags, created_at=None) -> dict:
    event = sign_event(key, KIND, content, created_at or daemon_now(), tags)
    KEYS[event.id] = key
    return event.to_dict()


async def test_pow_claims_that_do_not_hold_are_silence_and_too_little_pow_is_answered_unstored(daemon):
    key = SecretKey.generate()
    client = Encryptor(key)
    content = client.encrypt(
        DVM_KEY.pubkey, '{"method":"request_account","params":{"email":"a@example.org"}}'
    )
    now = daemon_now()
    # Claims 24 bits; find a nonce whose id has fewer than 4 real leading zero bits (the gate).
    for n in range(1000):
        tags = [("p", DVM_KEY.pubkey_hex), ("nonce", str(n), "24")]
        if nip13.leading_zero_bits(compute_id(key.pubkey_hex, now, KIND, tags, content)) < 4:
            break
    claim = signed(key, content, tags, now)
    # Real work past the gate (4 bits) but short of request_account's minimum (8 in the tests).
    tags = nip13.mine(key.pubkey_hex, now, KIND, [("p", DVM_KEY.pubkey_hex)], content, target=5)
    while nip13.leading_zero_bits(compute_id(key.pubkey_hex, now, KIND, tags, content)) >= 8:
        tags = nip13.mine(key.pubkey_hex, now + 1, KIND, [("p", DVM_KEY.pubkey_hex)], content, target=5)
        now += 1
    short = signed(key, content, tags, now)
    low_target = legit().to_dict()  # mined to 8 bits and committed to 8: passes
    for event in (claim, short, low_target):
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled == 2)
    assert outcomes(daemon) == {low_target["id"]: "ok"}  # only the real request left a row
    await wait_until(lambda: daemon.publisher.idle)
    assert await replies_on_relay(daemon, [claim["id"], short["id"]]) == {short["id"]: "pow_too_low"}


async def test_garbage_content_from_a_real_key_gets_bad_request_from_memory(daemon):
    key = SecretKey.generate()
    now = daemon_now()
    ids = []
    for content in ("not encrypted at all", "A" * 200, "?iv=x", '{"method":"status"}'):
        tags = nip13.mine(key.pubkey_hex, now, KIND, [("p", DVM_KEY.pubkey_hex)], content, target=8)
        event = signed(key, content, tags, now)
        ids.append(event["id"])
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled == 4)
    await wait_until(lambda: daemon.publisher.idle)
    assert outcomes(daemon) == {}  # answered, never stored
    assert await replies_on_relay(daemon, ids) == dict.fromkeys(ids, "bad_request")


async def test_zero_pow_junk_costs_no_row_and_no_published_event(daemon):
    """3,000 zero-PoW events from fresh keys once cost 8 MB and 3,000 published events."""
    db = daemon.settings.path(daemon.settings.store.path)
    junk = []
    for i in range(300):
        key = SecretKey.generate()
        content = Encryptor(key).encrypt(
            DVM_KEY.pubkey, f'{{"method":"request_account","params":{{"email":"j{i}@example.org"}}}}'
        )
        junk.append(signed(key, content, [("p", DVM_KEY.pubkey_hex)]))
    before = sqlite3.connect(db).execute("SELECT count(*) FROM requests").fetchone()[0]
    for event in junk:
        await feed(daemon, event)
    good = legit().to_dict()
    await feed(daemon, good)
    await wait_until(lambda: daemon.handled == 1)
    await wait_until(lambda: daemon.publisher.idle)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM requests").fetchone()[0] == before + 1
    assert await replies_on_relay(daemon, [e["id"] for e in junk]) == {}


async def test_refusals_with_real_pow_are_answered_only_within_the_global_budget(daemon):
    burst = daemon.settings.daemon.refusal_replies_burst
    stale = []
    for _ in range(burst + 30):
        key = SecretKey.generate()
        event = legit(key=key, created_at=daemon_now() - 3600, expiration_s=7200).to_dict()  # stale
        KEYS[event["id"]] = key
        stale.append(event)
    for event in stale:
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled >= burst)
    await wait_until(lambda: daemon.pipeline.stats.queued == 0 and not daemon.pipeline.stats.in_progress)
    await wait_until(lambda: daemon.publisher.idle)
    answered = await replies_on_relay(daemon, [e["id"] for e in stale])
    rate = daemon.settings.daemon.refusal_replies_per_s
    assert burst <= len(answered) <= burst + 5 * rate  # a refill during the run may add a few
    assert set(answered.values()) == {"stale_event"}
    assert outcomes(daemon) == {}


async def test_a_far_future_event_does_not_make_the_daemon_deaf(tmp_path):
    """It was recorded with its created_at, and the subscription's since followed it into the
    future: after a restart or a reconnect the daemon answered nothing."""
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    try:
        daemon = await start_daemon(settings)
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            key = SecretKey.generate()
            future = legit(key=key, created_at=daemon_now() + 10 * 365 * 24 * 3600, expiration_s=None)
            await browser.client.send_event(rn_event(future))
            await asyncio.sleep(1.0)
            await daemon.shutdown()
            daemon = await start_daemon(settings)  # a restart
            relay.stop()
            relay.start()  # and a relay reconnect
            await wait_until(lambda: bool(daemon.pool.connected), timeout_s=20)
            request = browser.request("request_account", {"email": "still@example.org"})
            deadline = asyncio.get_running_loop().time() + 20
            while not (await browser.client.send_event(request)).success:  # the browser reconnects too
                assert asyncio.get_running_loop().time() < deadline, "the browser never reconnected"
                await asyncio.sleep(0.5)
            assert (await browser.reply_to(request)).code == "ok"
        await daemon.shutdown()
    finally:
        smtp.stop()
        relay.stop()


def rn_event(event):
    import nostr_sdk as rn

    return rn.Event.from_json(event.to_json())


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


async def test_ordinary_requests_do_not_spend_the_refusal_budget(daemon):
    """Attack F6: every opened request took a token, so after 20 of them refusals got silence."""
    for _ in range(daemon.settings.daemon.refusal_replies_burst + 5):
        await feed(daemon, legit().to_dict())
    key = SecretKey.generate()
    stale = legit(key=key, created_at=daemon_now() - 3600, expiration_s=7200).to_dict()
    KEYS[stale["id"]] = key
    await feed(daemon, stale)
    await wait_until(lambda: daemon.handled == daemon.settings.daemon.refusal_replies_burst + 6)
    await wait_until(lambda: daemon.publisher.idle)
    assert await replies_on_relay(daemon, [stale["id"]]) == {stale["id"]: "stale_event"}


async def test_a_restart_catches_up_from_when_it_last_answered_not_from_a_future_created_at(tmp_path):
    """Attack F10: a request dated 590 s ahead moved the catch-up point of the next restart past
    requests sent while the daemon was down."""
    import time as clock_module

    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    try:
        daemon = await start_daemon(settings)
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            ahead = legit(created_at=daemon_now() + 590)
            await browser.client.send_event(rn_event(ahead))
            await wait_until(lambda: daemon.handled == 1)
            await daemon.shutdown()
            # 200 s of downtime (the restarted daemon's clock runs 200 s ahead); a request sent
            # 50 s into it is on the relay when the daemon comes back.
            key = SecretKey.generate()
            during = legit(key=key, created_at=daemon_now() + 50)
            await browser.client.send_event(rn_event(during))
            daemon = Daemon(settings, Secrets(DVM_KEY, CODE_SECRET), clock=lambda: clock_module.time() + 200)
            await daemon.start()
            await wait_until(lambda: during.id in outcomes(daemon), timeout_s=20)
        await daemon.shutdown()
    finally:
        smtp.stop()
        relay.stop()


def tagged(*extra: tuple[str, ...], method="request_account", params=None) -> dict:
    """A signed request with real PoW (8 bits) and ``extra`` tags after its ``p`` tag."""
    key = SecretKey.generate()
    params = {"email": f"t{key.pubkey_hex[:8]}@example.org"} if params is None else params
    content = Encryptor(key).encrypt(DVM_KEY.pubkey, json.dumps({"method": method, "params": params}))
    now = daemon_now()
    tags = nip13.mine(key.pubkey_hex, now, KIND, [("p", DVM_KEY.pubkey_hex), *extra], content, target=8)
    return signed(key, content, tags, now)


async def test_an_expiration_in_digits_that_are_not_ascii_is_ignored_not_a_crash(daemon):
    """``"²".isdigit()`` is True and ``int("²")`` raises: one such event with 12 bits of PoW once
    stopped the daemon answering anything, and again after each restart (the catch-up brought it
    back). NIP-40 timestamps are ASCII digits; anything else is ignored, as relays do."""
    odd = [tagged(("expiration", value)) for value in ("²", "1²", "١٢٣")]
    for event in odd:
        await feed(daemon, event)
    after = legit().to_dict()
    await feed(daemon, after)
    await wait_until(lambda: daemon.handled == 4)
    assert outcomes(daemon) == dict.fromkeys([*(e["id"] for e in odd), after["id"]], "ok")
    assert daemon.pipeline.broken == ""


class Faulty(Encryptor):
    """The daemon's own encryptor with a bug that one sender's key meets."""

    victim = ""

    def decrypt(self, peer, content):
        if peer.hex() == self.victim:
            raise RuntimeError("a bug\nwith a second line")
        return super().decrypt(peer, content)


async def test_an_event_that_meets_a_bug_in_opening_is_dropped_and_logged_and_the_rest_served(daemon, caplog):
    """Defence in depth behind the fix above: an error no check expects drops that one event (no
    reply, no row), says so in a WARNING with the control characters escaped, and every other
    request, in its batch and after it, is served."""
    poison = tagged()
    Faulty.victim = poison["pubkey"]
    opener = daemon.pipeline.opener
    opener.encryptor = Faulty(DVM_KEY)  # batches below the worker's minimum open inline, here
    before, poisoned = legit().to_dict(), legit().to_dict()
    for event in (before, poison, poisoned):
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled == 2)
    later = legit().to_dict()
    await feed(daemon, later)
    await wait_until(lambda: daemon.handled == 3)
    assert outcomes(daemon) == dict.fromkeys([before["id"], poisoned["id"], later["id"]], "ok")
    assert daemon.pipeline.broken == ""
    [record] = [r for r in caplog.records if poison["id"][:12] in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "opening it raised RuntimeError: 'a bug\\nwith a second line'" in record.getMessage()
    await wait_until(lambda: daemon.publisher.idle)
    assert await replies_on_relay(daemon, [poison["id"]]) == {}


class FaultyReply(Encryptor):
    """The daemon's own encryptor with a bug that encrypting one sender's reply meets."""

    victim = ""

    def encrypt(self, peer, plaintext, *args, **kwargs):
        if peer.hex() == self.victim:
            raise RuntimeError("a bug while deciding")
        return super().encrypt(peer, plaintext, *args, **kwargs)


async def test_a_request_that_meets_a_bug_in_deciding_rolls_back_alone_and_its_batch_is_answered(
    daemon, caplog
):
    """A decision's unexpected error once failed its whole batch, which was retried, with the same
    request in it, forever: one request held back every other in its batch. Now that request alone
    is rolled back (no row, no mail, no reply) and logged with its traceback; the others in its batch
    are answered at once, and nothing is retried."""
    poison = legit().to_dict()
    FaultyReply.victim = poison["pubkey"]
    daemon.service.encryptor = FaultyReply(DVM_KEY)
    others = [legit().to_dict() for _ in range(3)]
    for event in (others[0], poison, *others[1:]):  # fed without a pause: one batch
        await feed(daemon, event)
    await wait_until(lambda: daemon.handled == 3)
    assert outcomes(daemon) == dict.fromkeys([e["id"] for e in others], "ok")
    assert daemon.pipeline.stats.failures == 0
    [record] = [r for r in caplog.records if f"request {poison['id'][:12]} failed" in r.getMessage()]
    assert record.levelname == "ERROR" and record.exc_info is not None
    await asyncio.sleep(1.0)  # a retried batch would come back within FAILED_BATCH_BACKOFF's first step
    assert daemon.handled == 3 and poison["id"] not in outcomes(daemon)


class StageBug(BaseException):
    """A bug in the stage itself (its events' own errors come back as drops, from ``open_batch``)."""


class BrokenOpener:
    async def open(self, events, now):
        raise StageBug("a bug past every guard")

    def close(self) -> None:
        return None


async def test_a_request_stage_that_stops_stops_the_daemon_with_an_error(tmp_path):
    """A stage that ends (a bug outside every per-event guard) would leave the daemon up, connected
    and answering nothing, its health green: ``run`` stops instead, at once (no drain wait), and
    raises, so ``sigit-dvm run`` exits non-zero and systemd's ``Restart=on-failure`` starts it again."""
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    try:
        settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
        daemon = Daemon(settings, Secrets(DVM_KEY, CODE_SECRET))
        running = asyncio.ensure_future(daemon.run())
        await wait_until(lambda: daemon.pool.connected)

        daemon.pipeline.opener = BrokenOpener()
        await feed(daemon, legit().to_dict())
        with pytest.raises(DVMError, match=r"the open stage stopped \(StageBug: a bug past every guard\)"):
            await asyncio.wait_for(running, 20)
    finally:
        smtp.stop()
        relay.stop()

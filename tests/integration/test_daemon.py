"""The daemon end to end: a real relay, a real SMTP server, a real database, and a client
built on rust-nostr (nostr-sdk). Tests taking ``store_url`` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import nostr_sdk as rn
import pytest

from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.store import backends
from tests.support.daemon import DVM_KEY, code_from, make_settings, signup_events, start_daemon, write_relays
from tests.support.relay import LocalRelay, wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))


def db_rows(settings, sql, *args):
    """Rows of the daemon's database (either backend), as plain tuples."""
    conn = backends.connect_any(settings.store.url, settings.path(settings.store.path))
    try:
        return [tuple(row) for row in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


async def wait_for_mail(smtp, count):
    await wait_until(lambda: len(smtp.messages) >= count)


@pytest.mark.parametrize("relay", ["sqlite", "lmdb", "rust-nostr"], indirect=True)
async def test_signup_activation_and_login_through_a_real_relay(tmp_path, relay, smtp, store_url):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            assert (await browser.call("request_account", {"email": "Ana@Example.org"})).code == "ok"
            await wait_for_mail(smtp, 1)
            code = code_from(smtp.messages, "ana@example.org")
            entropy = (await browser.call("verify_code", {"code": code})).result["entropy"]
            keys = rn.Keys.generate()
            account = keys.public_key().to_hex()
            activate = {"pubkey": account, "backup": BACKUP}
            assert (await browser.call("activate", activate, seal=keys)).code == "ok"
            # Login on a new device, answered in NIP-04 for an old client.
            browser.new_key()
            assert (
                await browser.call("request_login", {"email": "ana@example.org"}, nip04=True)
            ).code == "ok"
            await wait_for_mail(smtp, 3)
            code = code_from(smtp.messages, "ana@example.org")
            reply = await browser.call("verify_code", {"code": code}, nip04=True)
            assert "?iv=" in reply.event.content()
            assert reply.result == {"entropy": entropy, "pubkey": account, "backup": BACKUP}
            # Errors come back with a stable code.
            assert (await browser.call("request_account", {"email": "ana@example.org"})).code == "email_taken"
            # The NIP-89 announcement is on the relay.
            query = rn.Filter().kind(rn.Kind(31990)).author(rn.PublicKey.parse(DVM_KEY.pubkey_hex))
            assert await browser.count(query) == 1
        await wait_for_mail(smtp, 4)
        subjects = sorted(m["Subject"].split(":")[0] for m in smtp.messages)
        assert subjects == sorted(
            [
                "Your SIGit code",
                "Welcome to SIGit",
                "Your SIGit login code",
                "New login to your SIGit account",
            ]
        )
    finally:
        await daemon.shutdown()
    assert db_rows(settings, "SELECT count(*) FROM requests WHERE published_at IS NULL") == [(0,)]


async def test_two_relays_one_decision_and_the_reply_on_both(tmp_path, relay, smtp):
    second = LocalRelay(tmp_path / "relay-b").start()
    try:
        settings = make_settings(tmp_path / "dvm", [relay.url, second.url], smtp.port)
        daemon = await start_daemon(settings)
        try:
            async with SdkBrowser([relay.url, second.url], DVM_KEY.pubkey_hex) as browser:
                event = browser.request("request_account", {"email": "two@example.org"})
                await browser.publish(event)  # to both relays
                assert (await browser.reply_to(event)).code == "ok"
                await wait_for_mail(smtp, 1)
                for url in (relay.url, second.url):
                    async with SdkBrowser([url], DVM_KEY.pubkey_hex) as single:
                        reply = await single.reply_to(event, keys=browser.keys)
                        assert reply.code == "ok"
        finally:
            await daemon.shutdown()
        assert db_rows(settings, "SELECT count(*) FROM requests") == [(1,)]
        assert len(smtp.messages) == 1
    finally:
        second.stop()


async def test_relay_killed_and_restarted_mid_flow_loses_nothing(tmp_path, relay, smtp, store_url):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            assert (await browser.call("request_account", {"email": "kill@example.org"})).code == "ok"
        relay.kill()
        await wait_until(lambda: not daemon.pool.connected)
        relay.start()
        await wait_until(lambda: bool(daemon.pool.connected), timeout_s=20)
        await wait_for_mail(smtp, 1)
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser2:
            browser2.keys = browser.keys  # the same browser session, reconnected
            code = code_from(smtp.messages, "kill@example.org")
            reply = await browser2.call("verify_code", {"code": code})
            assert len(reply.result["entropy"]) == 64
    finally:
        await daemon.shutdown()


async def test_requests_sent_while_the_daemon_was_down_are_answered_on_restart(
    tmp_path, relay, smtp, store_url
):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    await daemon.shutdown()
    async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
        events = []
        for i in range(3):
            browser.new_key()
            event = browser.request("request_account", {"email": f"down{i}@example.org"})
            await browser.publish(event)
            events.append((event, browser.keys))
        daemon = await start_daemon(settings)  # a new process would do the same: same DB, same key
        try:
            for event, keys in events:
                assert (await browser.reply_to(event, keys=keys)).code == "ok"
        finally:
            await daemon.shutdown()
    assert db_rows(settings, "SELECT count(*) FROM requests WHERE outcome = 'ok'") == [(3,)]


@pytest.mark.parametrize("relay", ["nostr-relay"], indirect=True)  # keeps its events across a restart
async def test_a_reply_committed_while_no_relay_is_up_is_published_when_one_comes_back(
    tmp_path, relay, smtp, store_url
):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
        event = browser.request("request_account", {"email": "outbox@example.org"})
        await browser.publish(event)
    relay.stop()
    daemon = await start_daemon(settings, live=False)
    try:
        # Decide without any relay: the stored request arrives only when the relay is back, so
        # instead feed the event straight in, as a relay connection would.
        import orjson

        await daemon.pipeline.submit(orjson.loads(event.as_json()), "test")
        await wait_until(lambda: daemon.handled == 1)
        assert db_rows(settings, "SELECT published_at FROM requests") == [(None,)]
        relay.start()
        await wait_until(
            lambda: db_rows(settings, "SELECT published_at IS NOT NULL FROM requests") == [(1,)], timeout_s=30
        )
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as again:
            assert (await again.reply_to(event, keys=browser.keys)).code == "ok"
        assert daemon.handled == 1  # the relay's stored copy was recognised, not decided twice
    finally:
        await daemon.shutdown()


async def test_reloading_relays_adds_a_relay(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    second = LocalRelay(tmp_path / "relay-b").start()
    daemon = await start_daemon(settings)
    try:
        write_relays(settings.base_dir, [relay.url, second.url])
        await daemon.reload_relays()
        await wait_until(lambda: len(daemon.pool.connected) == 2)
        async with SdkBrowser([second.url], DVM_KEY.pubkey_hex) as browser:
            assert (await browser.call("request_account", {"email": "hup@example.org"})).code == "ok"
    finally:
        await daemon.shutdown()
        second.stop()


async def test_email_change_end_to_end_with_both_mails_captured(tmp_path, relay, smtp, store_url):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            await browser.call("request_account", {"email": "old@example.org"})
            await wait_for_mail(smtp, 1)
            await browser.call("verify_code", {"code": code_from(smtp.messages, "old@example.org")})
            account = rn.Keys.generate()  # the user's real key: it signs account methods from now on
            activate = {"pubkey": account.public_key().to_hex(), "backup": BACKUP}
            assert (await browser.call("activate", activate, seal=account)).code == "ok"
            await wait_for_mail(smtp, 2)  # welcome

            assert (
                await browser.call("change_email", {"email": "new@example.org"}, keys=account)
            ).code == "ok"
            await wait_for_mail(smtp, 4)
            to_new = [m for m in smtp.messages if m["To"] == "new@example.org"]
            to_old = [
                m for m in smtp.messages if m["To"] == "old@example.org" and "about to change" in m["Subject"]
            ]
            assert len(to_new) == 1 and len(to_old) == 1
            assert "new@example.org" in to_old[0].get_body(("plain",)).get_content()

            status = await browser.call("status", keys=account)
            assert status.result["pending_email"] == "new@example.org"
            assert 0 < status.result["grace_s"] <= 7 * 24 * 3600
            # Until confirmed, login still uses the old address.
            browser.new_key()
            assert (await browser.call("request_login", {"email": "new@example.org"})).code == "unknown_email"

            code = code_from(smtp.messages, "new@example.org")
            confirmed = await browser.call("confirm_email", {"code": code}, keys=account)
            assert confirmed.result == {"email": "new@example.org"}
            await wait_for_mail(smtp, 5)
            assert smtp.messages[-1]["To"] == "old@example.org"
            assert smtp.messages[-1]["Subject"] == "Your SIGit address was changed"

            browser.new_key()
            assert (await browser.call("request_login", {"email": "new@example.org"})).code == "ok"
            assert (await browser.call("request_login", {"email": "old@example.org"})).code == "unknown_email"
            # An ephemeral key cannot use account methods.
            assert (await browser.call("status")).code == "unknown_account"
    finally:
        await daemon.shutdown()


async def test_nip42_auth_lets_the_daemon_read_a_relay_that_requires_it(tmp_path, smtp):
    relay = LocalRelay(tmp_path / "auth-relay", auth=True, query_roles="w").start()
    try:
        relay.grant(DVM_KEY.pubkey_hex, "aw")  # may read (w, only after AUTH) and publish (a)
        settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
        daemon = await start_daemon(settings)
        try:
            async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
                event = browser.request("request_account", {"email": "auth@example.org"})
                await browser.publish(event)  # anyone may publish
            await wait_until(lambda: daemon.handled == 1, timeout_s=20)
            await wait_until(
                lambda: db_rows(settings, "SELECT published_at IS NOT NULL FROM requests") == [(1,)]
            )
        finally:
            await daemon.shutdown()
    finally:
        relay.stop()


async def test_a_burst_opened_by_the_worker_and_single_events_opened_inline_are_each_decided_once(
    tmp_path, relay, smtp, store_url
):
    """Batches of WORKER_MIN_BATCH or more go to the worker process, smaller ones are opened inline,
    and batches queued behind a commit share the next transaction: every request is decided once."""
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    try:
        events = signup_events(9, "merged")
        await daemon.pipeline.submit(events[0].to_dict(), "test")  # alone: opened inline
        await asyncio.sleep(0)
        for event in events[1:]:  # queued together: one batch for the worker
            await daemon.pipeline.submit(event.to_dict(), "test")
        for event in events:  # copies from another relay while they wait: dropped
            await daemon.pipeline.submit(event.to_dict(), "other")
        await wait_until(lambda: daemon.handled == 9)
        rows = db_rows(settings, "SELECT event_id, outcome FROM requests ORDER BY processed_at, event_id")
        assert sorted(rows) == sorted((e.id, "ok") for e in events)
        await wait_for_mail(smtp, 9)
        assert daemon.handled == 9 and len(smtp.messages) == 9
    finally:
        await daemon.shutdown()


async def test_junk_claiming_work_is_dropped_at_intake_and_requests_that_paid_more_go_first(
    tmp_path, relay, smtp, caplog
):
    """A forged claim of work (a made-up id with leading zeros) is dropped before the queue and the
    worker; of queued requests, one that paid its method's price (8 bits) passes those that paid
    only the lowest minimum (4), and requests of one price keep their order."""
    caplog.set_level("INFO", logger="sigit.pipeline")
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    try:
        now = int(time.time())
        cheap = [
            build_request(Encryptor(SecretKey.generate()), DVM_KEY.pubkey_hex, "status", {}, now, pow_bits=4)
            for _ in range(3)
        ]
        (paid,) = signup_events(1, "paid")
        forged = {**signup_events(1, "forged")[0].to_dict(), "id": "00" * 32}
        await daemon.pipeline.submit(forged, "test")
        assert daemon.pipeline.stats.queued == 0  # never queued
        for event in [*cheap, paid]:  # queued together, before the open stage runs
            await daemon.pipeline.submit(event.to_dict(), "test")
        assert daemon.pipeline.stats.queued == 4
        await wait_until(lambda: daemon.handled == 4)
        order = [row[0] for row in db_rows(settings, "SELECT event_id FROM requests ORDER BY rowid")]
        assert order == [paid.id, *(e.id for e in cheap)]
        assert not any("00" * 6 in r.getMessage() for r in caplog.records)  # nor opened, nor logged
    finally:
        await daemon.shutdown()


async def test_a_late_copy_of_a_decided_request_gets_the_stored_reply_not_a_refusal(
    tmp_path, relay, smtp, store_url
):
    """A copy seen after the window (by another daemon, or this one after a long outage) is
    answered with the decision, byte for byte: never a stale_event next to an ok."""
    event = build_request(
        Encryptor(SecretKey.generate()),
        DVM_KEY.pubkey_hex,
        "request_account",
        {"email": "late@example.org"},
        int(time.time()) - 100,  # inside the default window (600 s), outside a 30 s one
        pow_bits=8,
    )
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url)
    daemon = await start_daemon(settings)
    try:
        await daemon.pipeline.submit(event.to_dict(), "test")
        await wait_until(lambda: daemon.handled == 1)
        await wait_until(lambda: daemon.publisher.idle)
    finally:
        await daemon.shutdown()
    (stored,) = db_rows(settings, "SELECT reply_id FROM requests WHERE event_id = ?", event.id)
    narrow = make_settings(
        tmp_path / "dvm", [relay.url], smtp.port, store_url=store_url, created_at_window_s=30
    )
    later = await start_daemon(narrow)  # another daemon sees the same event too late
    try:
        await later.pipeline.submit(event.to_dict(), "a late relay")
        await wait_until(lambda: later.handled == 1)
        await wait_until(lambda: later.publisher.idle)
    finally:
        await later.shutdown()
    query = (
        rn.Filter()
        .kind(rn.Kind(6780))
        .author(rn.PublicKey.parse(DVM_KEY.pubkey_hex))
        .event(rn.EventId.parse(event.id))
    )
    async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
        found = await browser.client.fetch_events(rn.ReqTarget.auto([query]), timeout=timedelta(seconds=3))
    assert [e.id().to_hex() for e in found] == [stored[0]]


async def test_decided_ids_are_forgotten_once_a_copy_would_be_stale_and_a_late_copy_is_replayed(
    tmp_path, relay, smtp
):
    """The ids kept to drop copies at intake are bounded by the created_at window as well as by
    count: a copy arriving later is refused as stale anyway (and answered from the store)."""
    now = [time.time()]
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, created_at_window_s=30)
    daemon = await start_daemon(settings, clock=lambda: now[0])

    def signup(email: str, created_at: float):
        client = Encryptor(SecretKey.generate())
        return build_request(
            client, DVM_KEY.pubkey_hex, "request_account", {"email": email}, int(created_at), pow_bits=8
        )

    try:
        first = signup("first@example.org", now[0] - 25)
        await daemon.pipeline.submit(first.to_dict(), "test")
        await wait_until(lambda: daemon.handled == 1)
        await daemon.pipeline.submit(first.to_dict(), "other")  # a copy: dropped at intake
        assert daemon.pipeline.stats.remembered == 1
        now[0] += 10  # the first one's copies are stale from now on
        await daemon.pipeline.submit(signup("second@example.org", now[0]).to_dict(), "test")
        await wait_until(lambda: daemon.handled == 2)
        assert daemon.pipeline.stats.remembered == 1  # the first one is forgotten
        await daemon.pipeline.submit(first.to_dict(), "late")  # answered from the store, not decided
        await wait_until(lambda: daemon.handled == 3)
        outcomes = db_rows(settings, "SELECT outcome FROM requests WHERE event_id = ?", first.id)
        assert outcomes == [("ok",)]
    finally:
        await daemon.shutdown()

"""The health listener of a running daemon: /metrics moves during a signup, /readyz follows the
relay and the database going away and coming back, /healthz answers, nothing listens when off."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import platform
import sqlite3
import threading
import urllib.error
import urllib.request

import nostr_sdk as rn
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dvm.config import HealthSettings
from dvm.nostr import bech32
from tests.support.daemon import DVM_KEY, code_from, make_settings, start_daemon
from tests.support.relay import free_port, wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow
VERSION = importlib.metadata.version("sigit-dvm")
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))


async def get(port: int, path: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    return await asyncio.to_thread(fetch)


async def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = await get(port, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def eventually_ready(port: int, ready: bool, timeout_s: float = 20.0) -> str:
    body = ""

    async def check() -> bool:
        nonlocal body
        status, body = await get(port, "/readyz")
        return (status == 200) == ready

    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.1)
    return body


@pytest.fixture
def health_settings(tmp_path, relay, smtp):
    port = free_port()
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    health = HealthSettings(listen=f"127.0.0.1:{port}", probe_interval_s=0.2)
    return dataclasses.replace(settings, health=health), port


async def test_metrics_move_during_a_signup(health_settings, relay, smtp):
    settings, port = health_settings
    daemon = await start_daemon(settings)
    try:
        assert await get(port, "/healthz") == (200, "ok\n")
        await eventually_ready(port, True)
        before = await samples(port)
        ok = (
            "sigit_requests_total",
            (("method", "request_account"), ("outcome", "ok"), ("replayed", "false")),
        )
        assert before.get(ok, 0) == 0
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            assert (await browser.call("request_account", {"email": "ana@example.org"})).code == "ok"
        await wait_until(lambda: len(smtp.messages) >= 1)
        await asyncio.sleep(3)  # the outbox is counted every 12 probes (2.4 s here)
        after = await samples(port)
        assert after[ok] == 1
        assert after[("sigit_request_seconds_count", ())] >= 1
        assert after[("sigit_reply_publish_total", (("relay", relay.url), ("result", "accepted")))] >= 1
        assert after[("sigit_reply_publish_seconds_count", ())] >= 1
        assert after[("sigit_relays_connected", ())] == 1
        assert after[("sigit_relay_connects_total", (("relay", relay.url),))] == 1
        assert (
            after[("sigit_database_call_seconds_count", ())]
            > before[("sigit_database_call_seconds_count", ())]
        )
        assert after[("sigit_mail_outbox", (("kind", "signup_code"), ("status", "sent")))] == 1
        assert after[("sigit_mail_backlog", ())] == 0
        assert after[("sigit_intake_queue_depth", ())] == 0
        assert after[("sigit_database_bytes", ())] > 0
        assert after[("sigit_ready", ())] == 1
        assert after[("sigit_build_info", (("python", platform.python_version()), ("version", VERSION)))] == 1
        assert after[("process_resident_memory_bytes", ())] > 0
        assert (await get(port, "/nope"))[0] == 404
    finally:
        await daemon.shutdown()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", timeout=2)


async def test_the_exposition_has_one_help_per_metric_and_no_created_samples(health_settings):
    settings, port = health_settings
    daemon = await start_daemon(settings, live=False)
    try:
        status, text = await get(port, "/metrics")
        assert status == 200
        helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
        assert len(helps) == len(set(helps)), sorted(h for h in helps if helps.count(h) > 1)
        assert "_created" not in text
        assert {"process_cpu_seconds_total", "process_open_fds", "sigit_build_info"} <= {
            s.name for family in text_string_to_metric_families(text) for s in family.samples
        }
    finally:
        await daemon.shutdown()


async def test_a_refusal_answered_from_memory_counts_as_a_publication(health_settings, relay, smtp):
    settings, port = health_settings
    daemon = await start_daemon(settings)
    accepted = ("sigit_reply_publish_total", (("relay", relay.url), ("result", "accepted")))
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            assert (await browser.call("no_such_method", {})).code == "bad_request"
        assert (await samples(port)).get(accepted, 0) == 1
    finally:
        await daemon.shutdown()


async def test_in_private_mode_the_mail_metrics_do_not_tell_kinds_apart(tmp_path, relay, smtp):
    """A scrape must not show whether a stranger's request went to an account (login_code) or
    not (signup_code), nor whether it mailed at all: in private mode the outbox gauges are not
    exported; the backlog gauge stays."""
    port = free_port()
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port, private_mode=True)
    health = HealthSettings(listen=f"127.0.0.1:{port}", probe_interval_s=0.2)
    daemon = await start_daemon(dataclasses.replace(settings, health=health))
    try:
        async with SdkBrowser([relay.url], DVM_KEY.pubkey_hex) as browser:
            key = rn.Keys.generate()  # an account: a signup code, then a welcome notice
            params = {"pubkey": key.public_key().to_hex(), "email": "ana@example.org", "backup": BACKUP}
            assert (await browser.call("register", params, seal=key)).code == "ok"
            await wait_until(lambda: len(smtp.messages) >= 1)
            code = code_from(smtp.messages, "ana@example.org")
            assert (await browser.call("verify_code", {"code": code})).code == "ok"
            browser.new_key()  # a login code
            assert (await browser.call("request_login", {"email": "ana@example.org"})).code == "ok"
        await wait_until(lambda: len(smtp.messages) >= 3)
        await asyncio.sleep(3)  # the outbox is counted every 12 probes (2.4 s here)
        found = await samples(port)
        assert not [name for (name, _) in found if name in ("sigit_mail_outbox", "sigit_mail_retried")]
        assert ("sigit_mail_backlog", ()) in found
    finally:
        await daemon.shutdown()


async def test_idle_half_sent_requests_cost_no_threads_and_time_out(tmp_path, relay, smtp):
    """300 clients that send half a request and wait: the listener spends no thread on them,
    serves at most health.max_connections at once, and answers again once their time is up."""
    port = free_port()
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    health = HealthSettings(
        listen=f"127.0.0.1:{port}", probe_interval_s=0.2, max_connections=8, request_timeout_s=1.0
    )
    daemon = await start_daemon(dataclasses.replace(settings, health=health), live=False)
    threads_before = threading.active_count()
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(300):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            idle.append(writer)
        await asyncio.sleep(0.3)
        assert threading.active_count() <= threads_before
        assert daemon.health.server.active <= 8
        assert daemon.health.server.refused >= 292
        await asyncio.sleep(1.5)  # past request_timeout_s: every slot is free again
        assert daemon.health.server.active == 0
        assert await get(port, "/healthz") == (200, "ok\n")
    finally:
        for writer in idle:
            writer.close()
        await daemon.shutdown()


async def test_readyz_follows_the_relay_and_the_database(health_settings, relay):
    settings, port = health_settings
    daemon = await start_daemon(settings)
    try:
        body = await eventually_ready(port, True)
        assert body == "database: ok\nrelays: ok\nmail: ok\n"
        relay.stop()
        body = await eventually_ready(port, False)
        assert "relays: no relay connected (of 1)" in body
        relay.start()
        await eventually_ready(port, True)

        # Another process holds the write lock past the daemon's wait: not writable.
        locker = sqlite3.connect(settings.path(settings.store.path), isolation_level=None, timeout=1)
        locker.execute("BEGIN IMMEDIATE")
        try:
            body = await eventually_ready(port, False)
            assert "database: not writable: database is locked" in body
            assert (await get(port, "/healthz"))[0] == 200  # alive all along
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await eventually_ready(port, True)

        # The file itself goes away (moved), then comes back.
        path = settings.path(settings.store.path)
        moved = path.with_name("moved.sqlite3")
        path.rename(moved)
        try:
            body = await eventually_ready(port, False)
            assert f"database: {path} is gone" in body
        finally:
            moved.rename(path)
        await eventually_ready(port, True)
        metrics = await samples(port)
        assert metrics[("sigit_ready_check", (("check", "database"),))] == 1
    finally:
        await daemon.shutdown()


async def test_no_listener_unless_configured(tmp_path, relay, smtp):
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    try:
        assert daemon.health is None
    finally:
        await daemon.shutdown()

"""The health listener of a running daemon: /metrics moves during a signup, /readyz follows the
relay and the database going away and coming back, /healthz answers, nothing listens when off."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dvm.config import HealthSettings
from tests.support.daemon import DVM_KEY, make_settings, start_daemon
from tests.support.relay import free_port, wait_until
from tests.support.sdk_browser import SdkBrowser

pytestmark = pytest.mark.slow


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
        assert (await get(port, "/nope"))[0] == 404
    finally:
        await daemon.shutdown()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", timeout=2)


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

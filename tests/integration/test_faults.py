"""Faults, bounded in time: kill -9 during a burst, flapping relay connections, a refusing SMTP
server, a locked and a full database. Every request gets exactly one answer and every code email
goes out once (one Message-ID per address)."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from dvm.demo.local import write_local_config
from dvm.relays import messages
from tests.support.daemon import DVM_KEY, make_settings, signup_events, start_daemon
from tests.support.relay import LocalRelay, free_port, replies_on_relay, wait_until
from tests.support.smtp import Catcher, start_smtp

pytestmark = pytest.mark.slow
SIGIT = Path(sys.executable).parent / "sigit-dvm"


async def publish(url: str, events: list) -> None:
    async with connect(url) as ws:
        for event in events:
            await ws.send(messages.event_raw(event.to_json()))
            await ws.recv()  # the relay's OK


def write_daemon_config(directory: Path, relay_url: str, smtp_port: int) -> Path:
    config, _ = write_local_config(
        directory,
        [relay_url],
        smtp_port,
        key=DVM_KEY,
        overrides={
            "service": {"pow_request_account_bits": 8, "pow_request_login_bits": 8, "pow_other_bits": 4},
            "mail": {"retry_base_s": 0.5, "poll_s": 0.2},
            "relays": {"reconnect_base_s": 0.2, "publish_retry_base_s": 0.5},
        },
    )
    return config


def start_process(config: Path) -> subprocess.Popen:
    log = (config.parent / "daemon.log").open("ab")
    return subprocess.Popen([str(SIGIT), "-c", str(config), "run"], stdout=log, stderr=subprocess.STDOUT)


async def test_kill_9_during_a_burst_then_restart_answers_everything_once(tmp_path):
    rng = random.Random(int(os.environ.get("SIGIT_FAULT_SEED", "7")))
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    config = write_daemon_config(tmp_path / "dvm", relay.url, smtp.port)
    events = signup_events(60, "burst")
    proc = start_process(config)
    try:
        await asyncio.sleep(1.5)
        sender = asyncio.create_task(publish(relay.url, events))
        for _ in range(2):  # two crashes at random points of the burst
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start_process(config)
        await sender
        ids = [e.id for e in events]

        async def all_answered() -> bool:
            found = await replies_on_relay(relay.url, ids)
            return all(found.get(i) for i in ids)

        deadline = time.monotonic() + 60
        while not await all_answered():
            assert time.monotonic() < deadline, "not every request was answered"
            await asyncio.sleep(0.5)
        await wait_until(lambda: len({m["To"] for m in catcher.messages}) == len(events), timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        smtp.stop()
    found = await replies_on_relay(relay.url, ids)
    relay.stop()
    assert {i: len(found[i]) for i in ids} == dict.fromkeys(ids, 1)  # exactly one answer each
    per_address = collections.defaultdict(set)
    for message in catcher.messages:
        per_address[message["To"]].add(message["Message-ID"])
    assert len(per_address) == len(events)
    assert all(len(mids) == 1 for mids in per_address.values())  # each code email went out once
    conn = sqlite3.connect(config.parent / "sigit-dvm.sqlite3")
    assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM requests").fetchone() == (60, 60)
    assert conn.execute("SELECT count(*) FROM mail WHERE status = 'sent'").fetchone()[0] == 60
    conn.close()


class SlowCatcher(Catcher):
    """Takes ``delay_s`` to accept each message, as a real server's checks do."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay_s)
        return await super().handle_DATA(server, session, envelope)


async def test_kill_9_while_mailing_sends_at_most_one_duplicate_per_kill(tmp_path):
    """Each kill lands while the daemon is sending mail; every address gets its code, with one
    Message-ID, and the copies beyond one per address number at most one per kill."""
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = SlowCatcher(delay_s=0.02)
    smtp = start_smtp(catcher)
    config = write_daemon_config(tmp_path / "dvm", relay.url, smtp.port)
    events = signup_events(90, "dup")
    proc = start_process(config)
    kills = 0
    try:
        await asyncio.sleep(1.5)
        sender = asyncio.create_task(publish(relay.url, events))
        for _ in range(4):
            seen = len(catcher.messages)
            await wait_until(lambda seen=seen: len(catcher.messages) >= seen + 4, timeout_s=30)
            proc.send_signal(signal.SIGKILL)  # mid-pass: messages are being accepted right now
            proc.wait(10)
            kills += 1
            proc = start_process(config)
        await sender
        await wait_until(lambda: len({m["To"] for m in catcher.messages}) == len(events), timeout_s=60)
        await asyncio.sleep(1.0)  # anything still to be sent again goes out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        smtp.stop()
        relay.stop()
    per_address = collections.defaultdict(list)
    for message in catcher.messages:
        per_address[message["To"]].append(message["Message-ID"])
    assert len(per_address) == len(events)
    assert all(len(set(mids)) == 1 for mids in per_address.values())  # a copy carries the same Message-ID
    duplicates = sum(len(mids) - 1 for mids in per_address.values())
    assert duplicates <= kills, f"{duplicates} duplicate emails after {kills} kill -9"


class FlakyProxy:
    """A TCP proxy in front of the relay that cuts every connection every ``period_s``."""

    def __init__(self, target_port: int, period_s: float) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.period_s = period_s
        self.writers: list[asyncio.StreamWriter] = []
        self.cuts = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.cutter = asyncio.create_task(self._cut_forever())

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _cut_forever(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            for writer in self.writers:
                writer.close()
            self.cuts += 1
            self.writers = []

    async def stop(self) -> None:
        self.cutter.cancel()
        self.server.close()
        for writer in self.writers:
            writer.close()


async def test_relay_connections_dropping_repeatedly_lose_nothing(tmp_path):
    relay = LocalRelay(tmp_path / "relay").start()
    proxy = FlakyProxy(relay.port, period_s=0.4)
    await proxy.start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [f"ws://127.0.0.1:{proxy.port}"], smtp.port)
    daemon = await start_daemon(settings)
    try:
        events = signup_events(30, "flaky")
        for chunk in range(0, 30, 5):
            await publish(relay.url, events[chunk : chunk + 5])  # clients talk to the relay directly
            await asyncio.sleep(0.3)
        ids = [e.id for e in events]
        deadline = time.monotonic() + 60
        while True:
            found = await replies_on_relay(relay.url, ids)
            if all(found.get(i) for i in ids):
                break
            assert time.monotonic() < deadline, f"{sum(1 for i in ids if found.get(i))}/30 answered"
            await asyncio.sleep(0.5)
        assert proxy.cuts >= 2  # connections were cut while requests were flowing
        assert all(len(found[i]) == 1 for i in ids)
    finally:
        await daemon.shutdown()
        await proxy.stop()
        smtp.stop()
        relay.stop()


async def test_smtp_refusing_for_a_while_delivers_every_code_once_afterwards(tmp_path):
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher(refuse="451 4.3.2 try again later")
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    try:
        events = signup_events(10, "smtp")
        await publish(relay.url, events)
        await wait_until(lambda: daemon.handled == 10)
        await asyncio.sleep(1.5)  # several refused attempts
        assert catcher.messages == []
        catcher.refuse = None
        await wait_until(lambda: len(catcher.messages) >= 10, timeout_s=30)
        await asyncio.sleep(1.0)
        assert sorted(m["To"] for m in catcher.messages) == sorted(f"smtp{i}@example.org" for i in range(10))
    finally:
        await daemon.shutdown()
        smtp.stop()
        relay.stop()


@pytest.mark.parametrize("fault", ["locked", "full"])
async def test_a_locked_or_full_database_is_an_error_and_a_retry_not_a_crash(tmp_path, fault):
    relay = LocalRelay(tmp_path / "relay").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    settings = make_settings(tmp_path / "dvm", [relay.url], smtp.port)
    daemon = await start_daemon(settings)
    blocker = sqlite3.connect(settings.path(settings.store.path), isolation_level=None)
    try:
        await daemon.db.run(lambda c: c.execute("PRAGMA busy_timeout = 200"))
        if fault == "locked":
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        else:
            pages = await daemon.db.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
            await daemon.db.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))  # the disk is full
        count = 5 if fault == "locked" else 60  # enough rows to need pages the "disk" does not have
        events = signup_events(count, fault)
        await publish(relay.url, events)
        await asyncio.sleep(2.0)
        assert (
            daemon.handled < count and daemon.pipeline.stats.failures >= 1
        )  # failing, retrying, still running
        if fault == "locked":
            blocker.execute("ROLLBACK")
        else:
            await daemon.db.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        await wait_until(lambda: daemon.handled == count, timeout_s=40)
        # The bookkeeping refused meanwhile (replies published, mails sent) was kept and written:
        # every code went out once and no reply or mail is left to do again.
        await wait_until(lambda: len(catcher.messages) >= count, timeout_s=20)
        await asyncio.sleep(0.5)
        assert sorted(m["To"] for m in catcher.messages) == sorted(
            f"{fault}{i}@example.org" for i in range(count)
        )
        left = "SELECT (SELECT count(*) FROM requests WHERE published_at IS NULL) + "
        left += "(SELECT count(*) FROM mail WHERE status <> 'sent')"
        await wait_until(lambda: blocker.execute(left).fetchone()[0] == 0, timeout_s=10)
    finally:
        blocker.close()
        await daemon.shutdown()
        smtp.stop()
        relay.stop()


def test_the_opening_worker_exits_when_its_daemon_is_killed(tmp_path):
    relay = LocalRelay(tmp_path / "relay").start()
    try:
        config = write_daemon_config(tmp_path / "dvm", relay.url, 2525)
        proc = start_process(config)
        deadline = time.monotonic() + 20
        workers: list[str] = []
        while not workers:
            assert time.monotonic() < deadline, "no worker process started"
            time.sleep(0.2)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            workers = children.read_text().split() if children.exists() else []
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(
            Path(f"/proc/{pid}").exists() and "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
            for pid in workers
        ):
            assert time.monotonic() < deadline, "the worker outlived its killed daemon"
            time.sleep(0.2)
    finally:
        relay.stop()

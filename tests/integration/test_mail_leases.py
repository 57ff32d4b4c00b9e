"""Mail claimed in a batch under ONE lease waits in memory for a send slot (mail.concurrency) or
behind a mark the database refuses: past the lease another daemon claims and sends it, and the
first daemon, never checking that the claim is still its own, sends it too. Not one duplicate per
crash: every message of the batch, from two live daemons."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest

from dvm.accounts.decision import Mail, MailKind
from dvm.config import MailSettings
from dvm.mailer import outbox
from dvm.mailer.backends import SmtpBackend
from dvm.mailer.message import Sender
from dvm.mailer.templates import TemplateContext, Templates
from dvm.mailer.worker import MailWorker
from dvm.store import database, postgres, repository
from dvm.store.sealed import ParamsSeal
from tests.support.flows import CODE_SECRET, T0
from tests.support.smtp import Catcher, start_smtp

pytestmark = pytest.mark.slow
SEAL = ParamsSeal(CODE_SECRET)


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class SlowCatcher(Catcher):
    """Holds the first message's DATA until ``gate`` is set: a slow or tarpitting SMTP server."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.holding = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.holding.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


async def worker(url: str, port: int, clock: Clock) -> MailWorker:
    conf = MailSettings(host="127.0.0.1", port=port, concurrency=1, timeout_s=10)
    db = await postgres.PostgresDatabase(url).open()
    return MailWorker(
        db,
        SmtpBackend(conf),
        Templates(TemplateContext("https://sigit.example/#/verify?code={code}")),
        Sender("no-reply@sigit.example", "SIGit"),
        conf,
        clock,
        seal=SEAL,
    )


async def wait_for(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError


async def test_a_mail_claimed_by_a_live_daemon_is_not_sent_by_another(pg_url):
    conn = postgres.connect(pg_url)
    with database.immediate(conn):
        for i in range(3):
            mail = Mail(MailKind.WELCOME, f"user{i}@example.org", None, (("at", T0),))
            repository.queue_mail(conn, mail, f"tok{i:04d}", None, T0, seal=SEAL)
    slow, fast = SlowCatcher(), Catcher()
    slow_server, fast_server = start_smtp(slow), start_smtp(fast)
    clock = Clock()
    a = await worker(pg_url, slow_server.port, clock)
    b = await worker(pg_url, fast_server.port, clock)
    try:
        sending = asyncio.ensure_future(a.drain())  # claims all 3; sends one, two wait for the slot
        await wait_for(slow.holding)
        clock.t += a.lease_s + 1  # the SMTP server is slow: the batch's lease runs out
        await b.drain()  # another daemon's poll: the rows are due again, and it sends them
        slow.gate.set()
        await sending  # daemon A goes on with the batch it holds in memory
        ids = collections.Counter(m["Message-ID"] for m in [*slow.messages, *fast.messages])
        # At most the message in flight at lease expiry may go twice; the ones A never started
        # were B's to send alone.
        assert sum(n - 1 for n in ids.values()) <= 1, ids
    finally:
        for w in (a, b):
            await w.backend.close()
            await w.db.close()
        slow_server.stop()
        fast_server.stop()


async def test_mail_born_claimed_during_a_long_drain_is_sent_once(tmp_path):
    """One daemon, SQLite: a drain pass that outlasts the lease (a backlog after an SMTP outage)
    claims again the mail a request committed meanwhile (born claimed, waiting in memory for the
    drain to finish), sends it, and then the worker sends its in-memory copy too."""
    path = tmp_path / "mail.sqlite3"
    conn = database.connect(path)
    with database.immediate(conn):  # the backlog: one due mail
        mail = Mail(MailKind.WELCOME, "old@example.org", None, (("at", T0),))
        repository.queue_mail(conn, mail, "old0000", None, T0, seal=SEAL)
    slow = SlowCatcher()
    server = start_smtp(slow)
    clock = Clock()
    conf = MailSettings(host="127.0.0.1", port=server.port, concurrency=1, timeout_s=10)
    w = MailWorker(
        await database.Database(path).open(),
        SmtpBackend(conf),
        Templates(TemplateContext("https://sigit.example/#/verify?code={code}")),
        Sender("no-reply@sigit.example", "SIGit"),
        conf,
        clock,
        seal=SEAL,
    )
    try:
        draining = asyncio.ensure_future(w.drain())
        await wait_for(slow.holding)
        with database.immediate(conn):  # a signup commits its code mail, born claimed by this run
            mail = Mail(MailKind.WELCOME, "new@example.org", None, (("at", T0),))
            born = repository.queue_mail(conn, mail, "new0000", None, int(clock.t), w.claim, seal=SEAL)
        w.submit([born])
        clock.t += w.lease_s + 1  # the backlog takes longer than the lease
        slow.gate.set()
        await draining
        await w.send_submitted()
        ids = collections.Counter(m["Message-ID"] for m in slow.messages)
        assert ids["<new0000@sigit.example>"] == 1, ids
    finally:
        await w.backend.close()
        await w.db.close()
        server.stop()


async def test_a_daemon_whose_clock_runs_ahead_refuses_to_share_the_database(pg_url):
    """Leases are stamped and judged by each daemon's own clock: a daemon whose clock is ahead by
    the lease (60 s: an NTP-less VM, a suspended host) would take every claim the moment another
    daemon made it, and both would send. (The leader lease, 15 s, likewise.) So a daemon whose
    clock is off the database server's by more than MAX_CLOCK_SKEW_S refuses to start."""
    with pytest.raises(database.StoreError, match=r"clock is \+61 s off the database server's"):
        await postgres.PostgresDatabase(pg_url, clock=lambda: time.time() + 61).open()
    with pytest.raises(database.StoreError, match="synchronise them"):
        await postgres.PostgresDatabase(pg_url, clock=lambda: time.time() - 11).open()
    db = await postgres.PostgresDatabase(pg_url, clock=lambda: time.time() + 5).open()  # tolerated
    await db.close()


def test_a_late_outcome_of_a_lapsed_claim_does_not_undo_the_new_claim(pg_url):
    """A's send outlived its lease (each SMTP step may take up to mail.timeout_s; a session has
    more steps than the lease's four); B claimed the row and is sending. A's 'retry' outcome then
    clears B's claim and makes the row due again: a third sender takes it while B sends."""
    conn = postgres.connect(pg_url)
    with database.immediate(conn):
        mail = Mail(MailKind.WELCOME, "user0@example.org", None, (("at", T0),))
        repository.queue_mail(conn, mail, "tok0000", None, T0, seal=SEAL)
    (by_a,) = outbox.claim_due(conn, T0, 10, lease_s=60, claimer="A")
    assert len(outbox.claim_due(conn, T0 + 61, 10, lease_s=60, claimer="B")) == 1  # A's lease ran out
    outbox.record(conn, [outbox.Outcome(by_a, "retry", "451 try later", T0 + 65)])  # A, late
    assert outbox.claim_due(conn, T0 + 70, 10, lease_s=60, claimer="C") == []  # B's, until T0 + 121

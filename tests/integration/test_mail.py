"""Mail delivery against a real SMTP server (aiosmtpd on 127.0.0.1) and a real SQLite outbox."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import replace

import pytest

from dvm.accounts.decision import Mail, MailKind
from dvm.config import MailSettings
from dvm.daemon import Daemon, Secrets
from dvm.errors import ConfigError
from dvm.mailer import outbox
from dvm.mailer.backends import FileBackend, SmtpBackend
from dvm.mailer.message import Sender
from dvm.mailer.templates import TemplateContext, Templates
from dvm.mailer.worker import MailWorker
from dvm.protocol.email_address import normalise_email
from dvm.store import database, repository
from dvm.store.sealed import ParamsSeal
from tests.support.daemon import CODE_SECRET as DAEMON_CODE_SECRET
from tests.support.daemon import DVM_KEY, make_settings
from tests.support.flows import CODE_SECRET, T0, Harness, new_client
from tests.support.smtp import Authenticator, Catcher, client_tls, self_signed, server_tls, start_smtp

LINK = "https://sigit.example/#/verify?code={code}"
SEAL = ParamsSeal(CODE_SECRET)
SENDER = Sender("no-reply@sigit.example", "SIGit", reply_to="help@sigit.example")


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "mail.sqlite3"
    database.connect(path).close()
    return path


@pytest.fixture
def catcher(smtp):
    return smtp


def settings(port: int, **changes) -> MailSettings:
    return replace(MailSettings(host="127.0.0.1", port=port, retry_base_s=5, max_attempts=4), **changes)


async def worker_for(db_path, backend, mail_settings, clock) -> MailWorker:
    db = await database.Database(db_path).open()
    return MailWorker(
        db,
        backend,
        Templates(TemplateContext(LINK, "https://sigit.example/help")),
        SENDER,
        mail_settings,
        clock,
        seal=SEAL,
    )


def queue_signup(db_path, email="ana@example.org") -> str:
    conn = database.connect(db_path)
    h = Harness(conn)
    h.send(new_client(1), "request_account", {"email": email})
    code = h.last_code(normalise_email(email))
    conn.close()
    return code


def queue(db_path, count: int, kind=MailKind.WELCOME, tag: str = "tok") -> None:
    conn = database.connect(db_path)
    with database.immediate(conn):
        for i in range(count):
            mail = Mail(kind, f"user{i}@example.org", f"u{i}", (("at", T0),))
            repository.queue_mail(conn, mail, f"{tag}{i:04d}", None, T0, seal=SEAL)
    conn.close()


def rows(db_path):
    conn = database.connect(db_path)
    result = conn.execute(
        "SELECT status, attempts, last_error, params, next_attempt_at FROM mail ORDER BY id"
    ).fetchall()
    conn.close()
    return result


async def test_code_email_has_the_code_link_expiry_and_proper_headers(db_path, catcher):
    code = queue_signup(db_path)
    worker = await worker_for(db_path, SmtpBackend(settings(catcher.port)), settings(catcher.port), Clock())
    assert await worker.drain() == 1
    await worker.backend.close()
    (msg,) = catcher.messages
    assert msg["To"] == "ana@example.org"
    assert msg["From"] == "SIGit <no-reply@sigit.example>"
    assert msg["Reply-To"] == "help@sigit.example"
    assert code not in msg["Subject"] and msg["Subject"] == "Your SIGit code"  # lock screens
    assert f"\n    {code}\n" in msg.get_body(("plain",)).get_content()
    assert re.fullmatch(r"<[0-9a-f]{32}@sigit\.example>", msg["Message-ID"])
    assert msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    link = LINK.replace("{code}", code)
    for part in (text, html):
        assert code in part and link in part and "ana@example.org" in part
        assert "15 minutes" in part and "UTC" in part
        assert "$" not in part and "{code}" not in part
    assert "font-size:36px" in html and "https://sigit.example/help" in html
    (status, attempts, _, params, _) = rows(db_path)[0]
    assert (status, attempts) == ("sent", 1)
    assert params == ""  # a code mail's values leave the database once sent
    await worker.db.close()


async def test_starttls_with_auth(db_path, tmp_path):
    cert, key = self_signed(tmp_path)
    catcher = Catcher()
    controller = start_smtp(catcher, starttls=server_tls(cert, key), auth=Authenticator("dvm", "s3cret"))
    try:
        conf = settings(controller.port, tls="starttls", username="dvm")
        queue(db_path, 1)
        backend = SmtpBackend(conf, password="s3cret", tls_context=client_tls(cert))
        worker = await worker_for(db_path, backend, conf, Clock())
        await worker.drain()
        await backend.close()
        await worker.db.close()
        assert len(catcher.messages) == 1 and rows(db_path)[0][0] == "sent"
    finally:
        controller.stop()


async def test_implicit_tls(db_path, tmp_path):
    cert, key = self_signed(tmp_path)
    catcher = Catcher()
    controller = start_smtp(catcher, implicit=server_tls(cert, key))
    try:
        conf = settings(controller.port, tls="implicit")
        queue(db_path, 1)
        backend = SmtpBackend(conf, tls_context=client_tls(cert))
        worker = await worker_for(db_path, backend, conf, Clock())
        await worker.drain()
        await backend.close()
        await worker.db.close()
        assert len(catcher.messages) == 1
    finally:
        controller.stop()


async def test_wrong_smtp_password_is_retried_then_dead(db_path, tmp_path):
    cert, key = self_signed(tmp_path)
    controller = start_smtp(Catcher(), starttls=server_tls(cert, key), auth=Authenticator("dvm", "right"))
    try:
        conf = settings(controller.port, tls="starttls", username="dvm")
        queue(db_path, 1)
        backend = SmtpBackend(conf, password="wrong", tls_context=client_tls(cert))
        worker = await worker_for(db_path, backend, conf, Clock())
        await worker.drain()
        status, attempts, error, _, _ = rows(db_path)[0]
        assert (status, attempts) == ("dead", 1) and error.startswith("535")
        await worker.db.close()
    finally:
        controller.stop()


async def test_server_down_then_up_delivers_after_retry(db_path):
    from tests.support.smtp import free_port

    port = free_port()  # nothing listens yet
    queue_signup(db_path)
    clock = Clock()
    conf = settings(port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, clock)
    await worker.drain()
    status, attempts, error, _, next_at = rows(db_path)[0]
    assert (status, attempts, next_at) == ("queued", 1, T0 + 5)
    assert "ConnectError" in error or "Connection" in error
    clock.t += 4
    assert await worker.drain() == 0  # backing off
    catcher = Catcher()
    controller = start_smtp(catcher, port=port)
    try:
        clock.t += 1
        assert await worker.drain() == 1
        assert rows(db_path)[0][:2] == ("sent", 2) and len(catcher.messages) == 1
    finally:
        await worker.backend.close()
        controller.stop()
        await worker.db.close()


async def test_temporary_refusals_back_off_exponentially_then_give_up(db_path, catcher):
    catcher.refuse = "451 4.3.0 try again later"
    queue(db_path, 1)
    clock = Clock()
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, clock)
    waits = []
    for _ in range(conf.max_attempts):
        await worker.drain()
        status, attempts, error, _, next_at = rows(db_path)[0]
        if status == "dead":
            break
        waits.append(next_at - clock.t)
        clock.t = next_at
    assert waits == [5, 10, 20]
    assert (status, attempts) == ("dead", 4) and "451" in error and "gave up" in error
    await worker.backend.close()
    await worker.db.close()


async def test_permanent_refusal_is_dead_lettered_and_the_worker_keeps_serving(db_path, catcher):
    queue(db_path, 1)
    catcher.refuse = "550 5.1.1 no such user"
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    await worker.drain()
    catcher.refuse = None
    queue_signup(db_path)
    await worker.drain()
    (dead, sent) = rows(db_path)
    assert dead[0] == "dead" and "550 5.1.1 no such user" in dead[2] and dead[1] == 1
    assert sent[0] == "sent" and len(catcher.messages) == 1
    metrics = await worker.db.run(lambda conn: outbox.metrics(conn, T0))
    assert (metrics.queued, metrics.sent, metrics.dead) == (0, 1, 1)
    await worker.backend.close()
    await worker.db.close()


async def test_200_mails_drain_over_reused_connections(db_path, catcher):
    queue(db_path, 200)
    conf = settings(catcher.port, concurrency=4)
    backend = SmtpBackend(conf)
    worker = await worker_for(db_path, backend, conf, Clock())
    assert await worker.drain() == 200
    assert len(catcher.messages) == 200
    assert backend.connections_opened <= 4
    assert len({m["Message-ID"] for m in catcher.messages}) == 200
    await backend.close()
    await worker.db.close()


async def test_file_backend_writes_one_eml_per_message_id(db_path, tmp_path):
    queue(db_path, 3)
    conf = settings(1)
    worker = await worker_for(db_path, FileBackend(tmp_path / "out"), conf, Clock())
    await worker.drain()
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert [f.name for f in files] == ["tok0000.eml", "tok0001.eml", "tok0002.eml"]
    assert b"Subject: Welcome to SIGit" in files[0].read_bytes()
    await worker.db.close()


async def test_metrics_report_age_of_oldest_queued(db_path):
    queue(db_path, 2)
    conn = database.connect(db_path)
    m = outbox.metrics(conn, T0 + 42)
    assert (m.queued, m.sent, m.dead, m.retried, m.oldest_queued_age_s) == (2, 0, 0, 0, 42)
    conn.close()


async def test_mail_claimed_by_a_killed_run_goes_out_at_once_not_after_its_lease(db_path, catcher):
    queue(db_path, 3)
    conn = database.connect(db_path)
    claimed = outbox.claim_due(conn, T0, 10, lease_s=3600, claimer="run-that-was-killed")
    conn.close()
    assert len(claimed) == 3
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    assert await worker.drain() == 3
    assert len(catcher.messages) == 3 and [r[0] for r in rows(db_path)] == ["sent"] * 3
    await worker.backend.close()
    await worker.db.close()


def queue_claimed(db_path, claim: outbox.MailClaim, count: int, tag: str = "b") -> list[outbox.OutboxMail]:
    conn = database.connect(db_path)
    with database.immediate(conn):
        born = [
            repository.queue_mail(
                conn,
                Mail(MailKind.WELCOME, f"new{i}@example.org", f"n{i}", (("at", T0),)),
                f"{tag}{i}",
                None,
                T0,
                claim,
                seal=SEAL,
            )
            for i in range(count)
        ]
    conn.close()
    return [m for m in born if m is not None]


async def test_mail_born_claimed_is_sent_from_memory_and_never_claimed_twice(db_path, catcher):
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    born = queue_claimed(db_path, worker.claim, 2)
    assert [(m.attempts, m.recipient) for m in born] == [(1, "new0@example.org"), (1, "new1@example.org")]
    assert await worker.drain() == 0  # held under this run's lease: the outbox poll leaves it alone
    worker.submit(born)
    assert await worker.send_submitted() == 2
    assert await worker.drain() == 0
    assert len(catcher.messages) == 2
    assert [(r[0], r[1]) for r in rows(db_path)] == [("sent", 1), ("sent", 1)]
    await worker.backend.close()
    await worker.db.close()


async def test_mail_born_claimed_by_a_killed_run_goes_out_with_the_next_run(db_path, catcher):
    queue_claimed(db_path, outbox.MailClaim("run-that-was-killed", 3600), 2)  # never handed over
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    assert await worker.drain() == 2
    assert len(catcher.messages) == 2 and [r[0] for r in rows(db_path)] == ["sent"] * 2
    await worker.backend.close()
    await worker.db.close()


class MarkedCatcher(Catcher):
    """Notes, as each message arrives, how many rows the database already has marked sent."""

    def __init__(self, db_path) -> None:
        super().__init__()
        self.db_path = db_path
        self.marked_before: list[int] = []

    async def handle_DATA(self, server, session, envelope):
        conn = sqlite3.connect(self.db_path)
        self.marked_before.append(
            conn.execute("SELECT count(*) FROM mail WHERE status = 'sent'").fetchone()[0]
        )
        conn.close()
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_each_accepted_message_is_marked_sent_before_the_next_one_is_accepted(db_path, concurrency):
    """A kill -9 can then leave at most one accepted message unmarked: one duplicate per crash."""
    catcher = MarkedCatcher(db_path)
    controller = start_smtp(catcher)
    try:
        conf = settings(controller.port, concurrency=concurrency)
        queue(db_path, 12)
        worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
        assert await worker.drain() == 12
        born = queue_claimed(db_path, worker.claim, 6)
        worker.submit(born)
        assert await worker.send_submitted() == 6
        assert catcher.marked_before == list(range(18))
        await worker.backend.close()
        await worker.db.close()
    finally:
        controller.stop()


async def test_while_the_database_refuses_a_sent_mark_no_other_message_is_accepted(db_path, catcher):
    conf = settings(catcher.port, concurrency=2)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    born = queue_claimed(db_path, worker.claim, 2)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    worker.submit(born)
    sending = asyncio.ensure_future(worker.send_submitted())
    await asyncio.sleep(1.5)
    assert len(catcher.messages) == 1 and not sending.done()  # the second waits for the first's mark
    blocker.execute("ROLLBACK")
    blocker.close()
    assert await sending == 2
    assert [r[0] for r in rows(db_path)] == ["sent"] * 2 and len(catcher.messages) == 2
    await worker.backend.close()
    await worker.db.close()


class EnvelopeCatcher(Catcher):
    """Also keeps each message's envelope recipients and raw bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((list(envelope.rcpt_tos), envelope.content))
        return await super().handle_DATA(server, session, envelope)


async def test_an_internationalised_address_is_delivered_when_the_server_offers_smtputf8(db_path):
    catcher = EnvelopeCatcher()
    controller = start_smtp(catcher, smtputf8=True)
    try:
        queue_signup(db_path, "josé@例え.jp")
        conf = settings(controller.port)
        worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
        assert await worker.drain() == 1
        await worker.backend.close()
        await worker.db.close()
        ((recipients, content),) = catcher.envelopes
        assert recipients == ["josé@xn--r8jz45g.jp"]
        assert "To: josé@xn--r8jz45g.jp".encode() in content
        assert rows(db_path)[0][:2] == ("sent", 1)
    finally:
        controller.stop()


async def test_without_smtputf8_an_internationalised_address_fails_for_good_with_the_reason(db_path, caplog):
    catcher = Catcher()
    controller = start_smtp(catcher, smtputf8=False)
    try:
        queue_signup(db_path, "josé@例え.jp")
        conf = settings(controller.port)
        worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
        with caplog.at_level("WARNING", logger="sigit.mail"):
            await worker.drain()
        status, attempts, error, _, _ = rows(db_path)[0]
        assert (status, attempts) == ("dead", 1) and "SMTPUTF8" in error
        assert any("SMTPUTF8" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
        queue(db_path, 1)  # the connection it used still serves
        assert await worker.drain() == 1 and len(catcher.messages) == 1
        metrics = await worker.db.run(lambda conn: outbox.metrics(conn, T0))
        assert (metrics.sent, metrics.dead) == (1, 1)
        await worker.backend.close()
        await worker.db.close()
    finally:
        controller.stop()


@pytest.mark.parametrize("recipient", ["ana\u202e@example.org", "ana\x9b@example.org", "ａｎａ@example.org"])
async def test_mail_to_an_unmailable_address_queued_before_is_dead_at_once_not_retried(
    db_path, catcher, recipient, caplog
):
    conn = database.connect(db_path)
    with database.immediate(conn):  # as an older version accepted and queued it
        repository.queue_mail(
            conn, Mail(MailKind.WELCOME, recipient, "u1", (("at", T0),)), "tok", None, T0, seal=SEAL
        )
    conn.close()
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    with caplog.at_level("WARNING", logger="sigit.mail"):
        await worker.drain()
    status, attempts, error, _, _ = rows(db_path)[0]
    assert (status, attempts) == ("dead", 1) and "not mailable" in error
    assert catcher.messages == [] and any(r.levelname == "WARNING" for r in caplog.records)
    await worker.backend.close()
    await worker.db.close()


def test_an_unmailable_address_is_refused_at_intake_and_nothing_is_queued(db_path):
    conn = database.connect(db_path)
    h = Harness(conn)
    for i, email in enumerate(["ana\u202e@example.org", "ana\u200b@example.org", "ana\x9b@example.org"]):
        reply = h.send(new_client(i), "request_account", {"email": email})
        assert reply.code == "invalid_email"
    assert h.count("mail") == 0 and h.count("users") == 0
    assert h.send(
        new_client(9), "request_account", {"email": "ａｎａ@ｅｘａｍｐｌｅ.ｏｒｇ"}
    ).ok  # full width
    assert [tuple(r) for r in conn.execute("SELECT recipient FROM mail")] == [("ana@example.org",)]
    conn.close()


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.25", "::ffff:192.0.2.25"])
async def test_smtp_auth_without_tls_to_another_host_is_refused_at_startup(tmp_path, host):
    mail = MailSettings(host=host, port=25, tls="none", username="dvm")
    with pytest.raises(ConfigError, match=r'mail\.tls is "none"'):
        SmtpBackend(mail, password="s3cret")
    settings = replace(make_settings(tmp_path, ["ws://127.0.0.1:9"], 25), mail=mail)
    with pytest.raises(ConfigError, match="password in clear"):
        Daemon(settings, Secrets(DVM_KEY, DAEMON_CODE_SECRET, "s3cret"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_smtp_auth_without_tls_is_allowed_to_a_loopback_host(db_path, host):
    catcher = Catcher()
    controller = start_smtp(catcher, auth=Authenticator("dvm", "s3cret"))
    try:
        conf = settings(controller.port, host=host, username="dvm")
        queue(db_path, 1)
        worker = await worker_for(db_path, SmtpBackend(conf, password="s3cret"), conf, Clock())
        await worker.drain()
        await worker.backend.close()
        await worker.db.close()
        assert len(catcher.messages) == 1 and rows(db_path)[0][0] == "sent"
    finally:
        controller.stop()


async def test_addresses_in_smtp_error_texts_reach_neither_logs_nor_the_database(db_path, catcher, caplog):
    catcher.refuse = "550 5.1.1 <ana@example.org>: Recipient address rejected: user ana unknown"
    queue_signup(db_path)
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, Clock())
    with caplog.at_level("DEBUG"):
        await worker.drain()
    status, _, error, _, _ = rows(db_path)[0]
    assert status == "dead" and "550 5.1.1" in error and "Recipient address rejected" in error
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sigit"))
    assert "Recipient address rejected" in logged
    for text in (error, logged):
        assert "ana@example.org" not in text and " ana " not in text
    await worker.backend.close()
    await worker.db.close()


def raw_database(db_path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


async def test_a_code_is_never_in_the_database_file_in_clear_queued_retrying_or_sent(db_path, catcher):
    code = queue_signup(db_path)
    never = (f'"{code}"'.encode(), b'"code"')
    assert not any(text in raw_database(db_path) for text in never)  # queued
    catcher.refuse = "451 4.3.0 try again later"
    clock = Clock()
    conf = settings(catcher.port)
    worker = await worker_for(db_path, SmtpBackend(conf), conf, clock)
    await worker.drain()
    assert rows(db_path)[0][0] == "queued"
    assert not any(text in raw_database(db_path) for text in never)  # retrying
    catcher.refuse = None
    clock.t += 60
    assert await worker.drain() == 1
    body = catcher.messages[0].get_body(("plain",)).get_content()
    assert code in body  # opened to build the message, and only there
    assert not any(text in raw_database(db_path) for text in never)  # sent
    await worker.backend.close()
    await worker.db.close()


async def test_sealed_params_do_not_open_in_another_row_or_under_another_secret(db_path, catcher):
    queue(db_path, 2)
    conn = database.connect(db_path)
    with database.immediate(conn):  # move row 1's sealed values to row 2
        conn.execute("UPDATE mail SET params = (SELECT params FROM mail WHERE id = 1) WHERE id = 2")
    conn.close()
    conf = settings(catcher.port)
    db = await database.Database(db_path).open()
    other = MailWorker(
        db,
        SmtpBackend(conf),
        Templates(TemplateContext(LINK)),
        SENDER,
        conf,
        Clock(),
        seal=ParamsSeal(b"another-secret-0123456789"),
    )
    queue(db_path, 1, tag="x")
    await other.drain()
    assert [(r[0], r[1]) for r in rows(db_path)] == [("dead", 1)] * 3 and catcher.messages == []
    assert all("code secret" in r[2] for r in rows(db_path))
    await other.backend.close()
    await db.close()


class ReplyLostCatcher(Catcher):
    """Takes the first message, then drops the connection before answering: the sender cannot
    know it was accepted."""

    async def handle_DATA(self, server, session, envelope):
        await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 1:
            server.transport.close()
        return "250 Message accepted"


async def test_a_message_sent_again_after_a_lost_reply_carries_the_same_message_id(db_path):
    catcher = ReplyLostCatcher()
    controller = start_smtp(catcher)
    try:
        queue_signup(db_path)
        clock = Clock()
        conf = settings(controller.port)
        worker = await worker_for(db_path, SmtpBackend(conf), conf, clock)
        await worker.drain()
        assert rows(db_path)[0][:2] == ("queued", 1)  # not known to be accepted: retried
        clock.t += 3600
        await worker.drain()
        assert rows(db_path)[0][:2] == ("sent", 2)
        first, second = catcher.messages
        assert first["Message-ID"] == second["Message-ID"] and first["Subject"] == second["Subject"]
        await worker.backend.close()
        await worker.db.close()
    finally:
        controller.stop()

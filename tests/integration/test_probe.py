"""``sigit-dvm probe`` against a real daemon (``sigit-dvm run``), a real relay and a real SMTP
server delivering into a Maildir: every hop seen, codes shared per mailbox, nothing accumulated,
exit codes for monitoring."""

from __future__ import annotations

import asyncio
import http.server
import json
import mailbox
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiosmtpd.handlers import Mailbox

from dvm.cli import main
from dvm.demo.local import write_local_config
from dvm.nostr import bech32
from dvm.protocol.announcement import nip05_document
from tests.support.daemon import DVM_KEY, make_settings, start_daemon
from tests.support.imap import ImapAccount, ImapServer
from tests.support.relay import wait_until
from tests.support.rust_relay import RustRelay
from tests.support.smtp import start_smtp

SIGIT = Path(sys.executable).parent / "sigit-dvm"
PROBE = "probe@example.org"


def probe(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, dict]:
    """``sigit-dvm ... probe --json``: its exit code and report."""
    out = subprocess.run(
        [str(SIGIT), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=_env() | (env or {}),
    )
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "SIGIT_CONFIG"}


def statuses(report: dict) -> dict[str, str]:
    return {step["step"]: step["status"] for step in report["steps"]}


def step(report: dict, name: str) -> dict:
    return next(s for s in report["steps"] if s["step"] == name)


class Nip05:
    """``/.well-known/nostr.json`` on 127.0.0.1, as the website serves it."""

    def __init__(self, body: dict) -> None:
        data = json.dumps(body).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path.startswith("/.well-known/nostr.json?name=dvm")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data if ok else b"{}")

            def log_message(self, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.name = f"dvm@127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.mark.slow
async def test_the_probe_follows_a_signup_to_the_mailbox_shares_live_codes_and_fails_when_the_daemon_is_down(
    tmp_path, relay
):
    maildir = tmp_path / "Maildir"
    smtp = start_smtp(Mailbox(str(maildir)))
    config, _ = write_local_config(
        tmp_path / "dvm",
        [relay.url],
        smtp.port,
        key=DVM_KEY,
        overrides={
            "service": {
                "pow_request_account_bits": 8,
                "pow_request_login_bits": 8,
                "pow_other_bits": 4,
                "max_codes_per_domain_per_hour": 1,  # from the second probe on, example.org is busy
            },
            "mail": {"poll_s": 0.2},
            "probe": {"email": PROBE, "mailbox": str(maildir), "timeout_s": 30},
        },
    )
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(SIGIT), "-c", str(config), "run"], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    nip05 = Nip05(nip05_document(DVM_KEY.pubkey_hex, [relay.url]))
    try:
        await wait_until(lambda: "serving as" in log.read_text() or daemon.poll() is not None, timeout_s=30)
        assert daemon.poll() is None, log.read_text()

        # Next to the daemon: every hop, from the announcement to verify_code.
        metrics = tmp_path / "probe.prom"
        code, report = await asyncio.to_thread(
            probe, "-c", str(config), "probe", "--metrics-file", str(metrics)
        )
        assert code == 0, report
        assert report["ok"] and report["dvm"] == bech32.npub(DVM_KEY.pubkey)
        assert set(statuses(report).values()) == {"ok"}, report
        assert step(report, "announce")["protocols"] == ["sigit-dvm/3"]
        assert step(report, "publish")["relays"][0]["accepted"] is True
        assert step(report, "reply")["outcome"] == "ok"
        assert step(report, "outbox")["new_code"] is True and step(report, "outbox")["mail_status"] == "sent"
        assert step(report, "mailbox")["code_digits"] == 6
        assert list(mailbox.Maildir(maildir)) == []  # the code mail it used is gone
        text = metrics.read_text()
        assert (
            "sigit_probe_success 1" in text and 'sigit_probe_step_status{step="verify",status="ok"} 1' in text
        )

        # Elsewhere (no settings, no database, no key): the DVM by its NIP-05 name and its relays.
        # Its code stays live and unused (no mailbox read).
        code, report = await asyncio.to_thread(
            probe, "probe", "--dvm", nip05.name, "--email", PROBE, "--no-mailbox", cwd=tmp_path
        )
        assert code == 0, report
        assert statuses(report) == {
            "dvm": "ok",
            "announce": "ok",
            "publish": "ok",
            "reply": "ok",
            "outbox": "skipped",
            "mailbox": "skipped",
            "verify": "skipped",
        }
        assert step(report, "dvm")["source"] == f"NIP-05 {nip05.name}"
        assert any("asked for 9 bits of PoW instead of 8" in n for n in report["notes"])  # and paid

        # A probe right after joins that live code (codes are shared per mailbox): no new mail,
        # and the report says so; the live code from the mailbox verifies.
        code, report = await asyncio.to_thread(probe, "-c", str(config), "probe")
        assert code == 0, report
        assert step(report, "outbox")["new_code"] is False
        assert "joined" in step(report, "outbox")["detail"] and any("joined" in n for n in report["notes"])
        assert step(report, "verify")["status"] == "ok"

        # Three probes, one pending signup: nothing accumulates.
        db = sqlite3.connect(tmp_path / "dvm" / "sigit-dvm.sqlite3")
        assert db.execute("SELECT email, activated FROM users").fetchall() == [(PROBE, 0)]
        db.close()

        # The daemon down: the reply never comes, exit 1, and the metrics say so.
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        code, report = await asyncio.to_thread(
            probe, "-c", str(config), "probe", "--timeout", "5", "--metrics-file", str(metrics)
        )
        assert code == 1
        assert step(report, "publish")["status"] == "ok"
        assert step(report, "reply")["status"] == "failed" and "timed out" in step(report, "reply")["detail"]
        assert "sigit_probe_success 0" in metrics.read_text()
    finally:
        nip05.stop()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        smtp.stop()


@pytest.mark.slow
async def test_the_probe_reads_its_code_over_imap_and_authenticates_to_a_relay_that_asks(tmp_path):
    relay = RustRelay(tmp_path / "relay", auth="read").start()  # NIP-42 before anything is read
    account = ImapAccount("probe", "imap-secret")
    imap = ImapServer(account)
    smtp = start_smtp(account)  # the daemon's mail lands in the IMAP account
    daemon = await start_daemon(make_settings(tmp_path / "dvm", [relay.url], smtp.port))
    url = f"imap://probe@127.0.0.1:{imap.port}/INBOX"
    args = ["probe", "--dvm", DVM_KEY.pubkey_hex, "--relay", relay.url, "--email", PROBE, "--mailbox", url]
    try:
        code, report = await asyncio.to_thread(
            probe, *args, cwd=tmp_path, env={"SIGIT_PROBE_MAILBOX_PASSWORD": "imap-secret"}
        )
        assert code == 0, report
        assert step(report, "mailbox")["status"] == "ok" and url in step(report, "mailbox")["detail"]
        assert step(report, "verify")["status"] == "ok"
        assert account.live() == [] and account.logins == 1  # read, verified, deleted
        code, report = await asyncio.to_thread(
            probe, *args, cwd=tmp_path, env={"SIGIT_PROBE_MAILBOX_PASSWORD": "wrong"}
        )
        assert code == 1
        assert (
            step(report, "mailbox")["status"] == "failed"
            and "wrong password" in step(report, "mailbox")["detail"]
        )
        assert step(report, "verify")["status"] == "skipped"
    finally:
        await daemon.shutdown()
        smtp.stop()
        imap.stop()
        relay.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe"], "no address to probe with"),
        (["probe", "--email", "not an address"], "--email"),
        (["probe", "--email", PROBE, "--dvm", "nobody"], "neither an npub"),
        (["probe", "--email", PROBE, "--dvm", DVM_KEY.pubkey_hex], "no relays"),
        (["probe", "--email", PROBE, "--dvm", DVM_KEY.pubkey_hex, "--relay", "http://x"], "--relay"),
    ],
)
def test_the_probe_refuses_what_it_cannot_do_with_exit_2(args, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGIT_CONFIG", raising=False)
    assert main(args) == 2
    assert message in capsys.readouterr().err

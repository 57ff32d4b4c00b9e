"""``sigit-dvm run`` as a real process: systemd notify, SIGHUP reload, SIGTERM clean exit, unit file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvm.demo.local import write_local_config
from dvm.nostr.keys import SecretKey
from tests.support.daemon import write_relays
from tests.support.relay import LocalRelay
from tests.support.smtp import Catcher, start_smtp

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SIGIT = Path(sys.executable).parent / "sigit-dvm"


def write_config(directory: Path, smtp_port: int, relays: list[str]) -> Path:
    config, _ = write_local_config(
        directory,
        relays,
        smtp_port,
        key=SecretKey(bytes.fromhex("7a" * 32)),
        overrides={"daemon": {"log_format": "json"}, "relays": {"reconnect_base_s": 0.2}},
    )
    return config


def receive(sock: socket.socket, wanted: str, timeout_s: float = 20.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            seen += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            break
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted} not received; got {seen}")


def test_run_notifies_systemd_reloads_on_sighup_and_exits_cleanly_on_sigterm(tmp_path):
    relay_a = LocalRelay(tmp_path / "a").start()
    relay_b = LocalRelay(tmp_path / "b").start()
    catcher = Catcher()
    smtp = start_smtp(catcher)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    config = write_config(tmp_path, smtp.port, [relay_a.url])
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="2000000")
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [str(SIGIT), "-c", str(config), "run"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        assert "READY=1" in receive(sock, "READY=1")
        assert "WATCHDOG=1" in receive(sock, "WATCHDOG=1")
        write_relays(tmp_path, [relay_a.url, relay_b.url])
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while b"relay connected " + relay_b.url.encode() not in (tmp_path / "daemon.log").read_bytes():
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in receive(sock, "STOPPING=1")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        sock.close()
        smtp.stop()
        relay_a.stop()
        relay_b.stop()
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    assert all(line.startswith("{") for line in lines if line.strip()), lines[:5]  # --log-format json


def test_check_config_and_pubkey(tmp_path):
    config = write_config(tmp_path, 2525, ["wss://relay.example"])
    out = subprocess.run(
        [str(SIGIT), "-c", str(config), "check-config", "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert '"relays": [\n    "wss://relay.example"' in out.stdout
    out = subprocess.run([str(SIGIT), "-c", str(config), "pubkey"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[1].startswith("npub1")
    out = subprocess.run([str(SIGIT), "-c", str(config), "nip05"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    pubkey = json.loads(
        subprocess.run(
            [str(SIGIT), "-c", str(config), "pubkey", "--json"], capture_output=True, text=True
        ).stdout
    )["pubkey"]
    assert json.loads(out.stdout) == {"names": {"dvm": pubkey}, "relays": {pubkey: ["wss://relay.example"]}}
    (tmp_path / "dvm.key").write_text("not a key")
    out = subprocess.run([str(SIGIT), "-c", str(config), "check-config"], capture_output=True, text=True)
    assert out.returncode == 2 and "not a valid secret key" in out.stdout  # a report line per problem


def test_keygen_writes_a_0600_key_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "new.key"
    out = subprocess.run([str(SIGIT), "keygen", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "npub1" in out.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([str(SIGIT), "keygen", str(path)], capture_output=True, text=True)
    assert again.returncode == 2 and "refusing" in again.stderr


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = tmp_path / "sigit-dvm.service"
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    text = (
        (ROOT / "scripts" / "sigit-dvm.service")
        .read_text()
        .replace("/opt/sigit-dvm/.venv/bin/sigit-dvm", str(SIGIT))
    )
    unit.write_text(text)
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in out.stderr.splitlines() if "sigit-dvm.service" in line]
    assert out.returncode == 0 and not problems, out.stderr

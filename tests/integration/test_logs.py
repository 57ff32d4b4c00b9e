"""What the daemon logs, read from a real process: priorities the journal understands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvm.demo.local import write_local_config
from dvm.nostr.keys import SecretKey
from tests.support.relay import free_port
from tests.support.smtp import Catcher, start_smtp

pytestmark = pytest.mark.slow
SIGIT = Path(sys.executable).parent / "sigit-dvm"


def wait_for(path: Path, text: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (found := path.read_text()):
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found


def test_under_journald_each_line_starts_with_its_syslog_priority(tmp_path, relay):
    """systemd sets $JOURNAL_STREAM to the device and inode of the stream it reads; lines to
    it start with ``<N>`` so that ``journalctl -p warning`` shows the warnings (journald strips
    the prefix and keeps the priority) and carry no time of their own (the journal stamps them)."""
    catcher = Catcher()
    smtp = start_smtp(catcher)
    nobody = f"ws://127.0.0.1:{free_port()}"  # a relay that is down: a warning
    config, _ = write_local_config(
        tmp_path, [relay.url, nobody], smtp.port, key=SecretKey(bytes.fromhex("7a" * 32))
    )
    log_path = tmp_path / "journal-stream"
    with log_path.open("wb") as log:
        stat = os.fstat(log.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}")
        proc = subprocess.Popen([str(SIGIT), "-c", str(config), "run"], stdout=log, stderr=log, env=env)
        try:
            wait_for(log_path, "serving as")
            wait_for(log_path, nobody)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            smtp.stop()
    lines = log_path.read_text().splitlines()
    assert lines and all(
        re.match(r"<[2-7]>(DEBUG|INFO|WARNING|ERROR|CRITICAL) sigit\.", line) for line in lines
    )
    assert any(
        re.match(r"<6>INFO sigit\.daemon: sigit-dvm \S+ serving as [0-9a-f]{64}", line) for line in lines
    )
    assert any(line.startswith("<4>WARNING sigit.relays: ") and nobody in line for line in lines)
    assert not [line for line in lines if re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", line)]

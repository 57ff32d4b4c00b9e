"""The README's first command: the demo's walkthrough (relay, mail catcher, daemon, browser)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_once_walks_signup_activation_and_login(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "dvm.demo", "--once", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for expected in (
        "request_account -> ok",
        "verify_code(",
        "activate(",
        "request_account -> email_taken",
        "verify_code(wrong) -> code_invalid",
        "key npub1",
        "status -> ok: ana@example.org, activated True",
        "Walkthrough complete",
    ):
        assert expected in out.stdout, expected
    log = (tmp_path / "daemon.log").read_text()
    assert "sigit-dvm stopped" in log  # SIGTERM led to a clean shutdown


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_live_demo_stops_everything_it_started_on_a_signal(tmp_path, signum):
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvm.demo", "--dir", str(tmp_path / "demo")], stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 120
        while "Still running" not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Still running" in out.read_text(), out.read_text()[-3000:]
        assert _processes_mentioning(str(tmp_path / "demo"))  # the relay and the daemon run
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "sigit-dvm stopped" in (tmp_path / "demo" / "daemon.log").read_text()
    assert _processes_mentioning(str(tmp_path / "demo")) == []  # nothing left behind


def test_demo_without_dir_leaves_nothing_behind_and_never_exposes_its_secrets(tmp_path):
    """Its temporary directory holds the DVM key and the code secret: 0600 while it runs, and
    removed at the end (issue 25 found them left in /tmp, code.secret world-readable)."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvm.demo", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("sigit-dvm demo in ")
        workdir = Path(first.split(" in ", 1)[1].strip())
        deadline = time.monotonic() + 60
        while not (workdir / "code.secret").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert oct(workdir.stat().st_mode & 0o777) == oct(0o700)
        for secret in ("dvm.key", "code.secret"):
            assert oct((workdir / secret).stat().st_mode & 0o777) == oct(0o600), secret
        rest = proc.stdout.read()
        assert proc.wait(timeout=180) == 0, rest[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"removed {workdir}" in rest
    assert list(tmp_path.iterdir()) == []

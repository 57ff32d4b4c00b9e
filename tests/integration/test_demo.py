"""The README's first command: the demo's walkthrough (relay, mail catcher, daemon, browser)."""

from __future__ import annotations

import subprocess
import sys

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
        "Walkthrough complete",
    ):
        assert expected in out.stdout, expected
    log = (tmp_path / "daemon.log").read_text()
    assert "sigit-dvm stopped" in log  # SIGTERM led to a clean shutdown

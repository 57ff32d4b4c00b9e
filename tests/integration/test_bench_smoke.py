"""Every ``scripts/bench`` section runs, briefly, through the script itself: a bench that no longer
runs fails here instead of rotting until someone needs its figures. The figures are printed
(``pytest -rP`` shows them), never asserted: timing on a shared machine is no test.

Sections that need Chromium and Node (pow) or PostgreSQL's server (pgdriver, e2e on PostgreSQL)
skip with the reason when those are missing, unless SIGIT_REQUIRE_BROWSER=1 or
SIGIT_REQUIRE_POSTGRES=1 (``scripts/test`` sets them once it has installed them) make that a
failure. The whole file takes about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dvm.demo.web import client_ready
from tests.support.postgres import server_bin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TINY = {  # sizes and durations that run each section in seconds
    "SIGIT_BENCH_BUDGET_S": "0.01",
    "SIGIT_BENCH_REQUESTS": "100",
    "SIGIT_BENCH_RATES": "20",
    "SIGIT_BENCH_SECONDS": "1",
    "SIGIT_BENCH_MAILS": "20",
    "SIGIT_BENCH_FLOOD": "100",
    "SIGIT_BENCH_LEGIT_S": "1",
    "SIGIT_BENCH_POW_RUNS": "2",
    "SIGIT_BENCH_POW_BITS": "8",
    "SIGIT_BENCH_TX": "50",
    "SIGIT_BENCH_RATE": "10",
    "SIGIT_BENCH_SAMPLE_S": "1",
}


def needs_browser() -> str | None:
    missing = [
        what for what, ok in (("node", shutil.which("node")), ("clients/js", client_ready())) if not ok
    ]
    return f"needs {', '.join(missing)} (scripts/bootstrap_js --browser)" if missing else None


def needs_postgres() -> str | None:
    return None if server_bin() else "needs PostgreSQL's server (scripts/bootstrap_pg)"


SECTIONS = [
    pytest.param("crypto", {}, None, id="crypto"),
    pytest.param("pipeline", {}, None, id="pipeline"),
    pytest.param("e2e", {}, None, id="e2e"),
    pytest.param("e2e", {"SIGIT_BENCH_RELAY": "rust", "SIGIT_BENCH_SECONDS": "2"}, None, id="e2e-rust"),
    pytest.param(
        "e2e",
        {"SIGIT_BENCH_STORE": "postgresql", "SIGIT_BENCH_DAEMONS": "2", "SIGIT_BENCH_LOCK_SAMPLE_MS": "20"},
        needs_postgres,
        id="e2e-postgresql-2-daemons",
    ),
    pytest.param("mail", {}, None, id="mail"),
    pytest.param("flood", {"SIGIT_BENCH_RELAY": "rust"}, None, id="flood"),
    pytest.param("echo", {"SIGIT_BENCH_RATES": "10"}, None, id="echo"),
    pytest.param("pow", {}, needs_browser, id="pow"),
    pytest.param("pgdriver", {}, needs_postgres, id="pgdriver"),
    pytest.param("soak", {"SIGIT_BENCH_SECONDS": "3"}, None, id="soak"),
    pytest.param(
        "oracle", {"SIGIT_BENCH_ORACLE_SAMPLES": "5", "SIGIT_BENCH_ORACLE_GAP_MS": "20"}, None, id="oracle"
    ),
    pytest.param(
        "owner", {"SIGIT_BENCH_OWNER_RATES": "20", "SIGIT_BENCH_OWNER_HOURS": "1"}, None, id="owner"
    ),
]


@pytest.mark.parametrize(("section", "env", "missing"), SECTIONS)
def test_the_bench_section_runs(section, env, missing):
    reason = missing() if missing else None
    if reason:
        required = {"pow": "SIGIT_REQUIRE_BROWSER"}.get(section, "SIGIT_REQUIRE_POSTGRES")
        if os.environ.get(required) == "1":
            pytest.fail(f"bench {section} {reason}, and {required}=1")
        pytest.skip(f"bench {section} {reason}")
    started = time.monotonic()
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench"), section],
        cwd=ROOT,
        env={**os.environ, **TINY, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    print(f"scripts/bench {section} {env or ''} in {time.monotonic() - started:.1f} s:\n{out.stdout}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]

"""The pure core (nostr, protocol, accounts) imports no I/O, no clock and no global randomness.

Randomness reaches the core as an injected ``rng``; the only OS source allowed is ``os.urandom``
as that parameter's default in the Nostr layer (keys and encryption need a CSPRNG by default).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dvm"
PURE = ["nostr", "protocol", "accounts"]
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "sqlite3",
    "aiosqlite",
    "aiosmtplib",
    "websockets",
    "smtplib",
    "subprocess",
    "threading",
    "time",
    "datetime",
    "random",
    "secrets",
    "logging",
    "dvm.store",
    "dvm.service",
    "dvm.daemon",
    "dvm.relays",
    "dvm.mailer",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path", [p for part in PURE for p in sorted((PACKAGE / part).rglob("*.py"))], ids=lambda p: p.name
)
def test_pure_module_imports_no_io(path):
    bad = {name for name in imports(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"

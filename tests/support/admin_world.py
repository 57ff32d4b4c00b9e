"""A real database filled by real flows, and the admin CLI run on it (in process or as a process)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dvm.cli import main
from dvm.config import load_settings
from dvm.daemon import Daemon, Secrets
from dvm.nostr import bech32
from dvm.nostr.encryption import Encryptor
from dvm.nostr.keys import SecretKey
from dvm.store import backends
from tests.support.flows import CODE_SECRET, DVM_SECRET, Harness, new_client

SIGIT = Path(sys.executable).parent / "sigit-dvm"
BACKUP = bech32.encode("ncryptsec", b"\x02" + bytes(range(90)))
BACKUP_2 = bech32.encode("ncryptsec", b"\x02" + bytes(range(1, 91)))


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def make_world(tmp_path: Path, capsys, url: str = ""):
    """Settings and a database: ana activated (her account key is ``h.ana_key``), bo with an
    unfinished signup, cy's session locked by wrong codes. ``url``: on PostgreSQL."""
    (tmp_path / "code.secret").write_text(CODE_SECRET.decode())
    (tmp_path / "dvm.key").write_text(DVM_SECRET)
    store = f'url = "{url}"\n' if url else ""
    (tmp_path / "sigit-dvm.toml").write_text(
        f'[store]\npath = "db.sqlite3"\n{store}[daemon]\ncode_secret_file = "code.secret"\n'
        'key_file = "dvm.key"\n[mail]\nhost = "127.0.0.1"\nfrom_address = "dvm@sigit.test"\n'
    )
    # Real time: the CLI stamps what it writes with the real clock.
    h = Harness(backends.connect_any(url, tmp_path / "db.sqlite3"), now=int(time.time()))
    h.url = url
    h.ana = new_client(1)
    h.send(h.ana, "request_account", {"email": "ana@example.org"})
    h.send(h.ana, "verify_code", {"code": h.last_code("ana@example.org")})
    h.ana_key = Encryptor(SecretKey.generate())
    h.account = h.ana_key.key.pubkey_hex
    h.send(h.ana, "activate", {"pubkey": h.account, "backup": BACKUP}, seal=h.ana_key.key)
    h.bo = new_client(2)
    h.send(h.bo, "request_account", {"email": "bo@example.org"})
    h.cy = new_client(3)
    h.send(h.cy, "request_account", {"email": "cy@example.org"})
    wrong = "000000" if h.last_code("cy@example.org") != "000000" else "111111"
    for _ in range(5):
        h.send(h.cy, "verify_code", {"code": wrong})
    h.dir = tmp_path
    h.capsys = capsys
    return h


@pytest.fixture
def world(tmp_path, capsys, store_url):
    """The admin world on each backend in turn (the CLI works on either unchanged)."""
    h = make_world(tmp_path, capsys, store_url)
    yield h
    h.conn.close()


@pytest.fixture
def world_sqlite(tmp_path, capsys):
    """The admin world on a SQLite file, for what concerns the file itself (backup, WAL)."""
    h = make_world(tmp_path, capsys)
    yield h
    h.conn.close()


def cli(h, *args: str, check: bool = True) -> Ran:
    """``sigit-dvm -c <settings> --actor alice ARGS`` through ``dvm.cli.main``, in this process."""
    h.capsys.readouterr()
    code = main(["-c", str(h.dir / "sigit-dvm.toml"), "--actor", "alice", *args])
    out = h.capsys.readouterr()
    ran = Ran(code, out.out, out.err)
    if check:
        assert code == 0, ran.stderr
    return ran


def process(h, *args: str, check: bool = True) -> Ran:
    """The installed ``sigit-dvm`` as a subprocess (no options added)."""
    out = subprocess.run([str(SIGIT), *args], capture_output=True, text=True, timeout=60, cwd=h.dir)
    if check:
        assert out.returncode == 0, out.stderr
    return Ran(out.returncode, out.stdout, out.stderr)


async def deliver(h, smtp) -> int:
    """Run the daemon's own mail worker, as ``sigit-dvm run`` builds it from the world's settings
    file and secrets, on everything due in the outbox, against the aiosmtpd catcher ``smtp``;
    return how many mails it attempted. What the CLI queued is sent (or not) exactly as the
    daemon would send it: no shortcut marks a row sent."""
    settings = load_settings(h.dir / "sigit-dvm.toml", environ={"SIGIT_MAIL_PORT": str(smtp.port)})
    daemon = Daemon(settings, Secrets.load(settings))
    await daemon.db.open()
    try:
        return await daemon.mail.drain()
    finally:
        await daemon.backend.close()
        await daemon.db.close()


def mail_rows(h, kind: str) -> list[tuple[str, str, str]]:
    """``(recipient, status, last_error)`` of every mail of ``kind``, oldest first."""
    return [
        (r[0], r[1], r[2])
        for r in h.conn.execute(
            "SELECT recipient, status, last_error FROM mail WHERE kind = ? ORDER BY id", (kind,)
        ).fetchall()
    ]

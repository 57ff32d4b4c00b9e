"""Settings and an in-process daemon for end-to-end tests (short backoffs, low PoW)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

from dvm.config import DaemonSettings, MailSettings, RelaySettings, ServiceSettings, Settings, StoreSettings
from dvm.daemon import Daemon, Secrets
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import Event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request

DVM_KEY = SecretKey(bytes.fromhex("5d" * 32))
CODE_SECRET = b"test-code-secret-0123456789"
TEST_POW = {"pow_request_account_bits": 8, "pow_request_login_bits": 8, "pow_other_bits": 4}


def write_relays(directory: Path, urls: list[str]) -> Path:
    path = directory / "relays.toml"
    path.write_text("relays = [" + ", ".join(f'"{u}"' for u in urls) + "]\n")
    return path


def make_settings(
    directory: Path, relays: list[str], smtp_port: int, *, store_url: str = "", **service: int
) -> Settings:
    """Settings for a test daemon; ``store_url`` (a PostgreSQL URL) replaces the SQLite file."""
    directory.mkdir(parents=True, exist_ok=True)
    write_relays(directory, relays)
    return Settings(
        service=ServiceSettings(**(TEST_POW | service)),
        store=StoreSettings(path="dvm.sqlite3", url=store_url),
        mail=MailSettings(
            host="127.0.0.1", port=smtp_port, poll_s=0.2, retry_base_s=0.5, from_address="dvm@sigit.test"
        ),
        relays=RelaySettings(
            relays_file="relays.toml",
            reconnect_base_s=0.2,
            reconnect_max_s=1.0,
            publish_retry_base_s=0.5,
            publish_retry_max_s=2.0,
            publish_timeout_s=5.0,
        ),
        daemon=DaemonSettings(drain_timeout_s=5.0),
        base_dir=directory,
    )


async def start_daemon(
    settings: Settings, *, live: bool = True, clock: Callable[[], float] = time.time
) -> Daemon:
    """Start a daemon and, with ``live``, wait until its subscription is live on every relay (EOSE),
    as a browser would only come by later: a request published while a relay is still answering
    the daemon's REQ may be missed by that relay."""
    daemon = Daemon(settings, Secrets(DVM_KEY, CODE_SECRET), clock=clock)
    await daemon.start()
    if live:
        async with asyncio.timeout(10):
            for conn in daemon.pool.connections.values():
                await conn.caught_up.wait()
    return daemon


CODE_LINE = re.compile(r"^    (\d{6}|\d{4} \d{4} \d{4} \d{4})$", re.M)


def body_code(msg) -> str | None:
    """The code in a code email's text body (its own indented line), or None for other mail.
    The subject carries no code unless the operator asks for it (mail.code_in_subject)."""
    part = msg.get_body(("plain",)) if msg.is_multipart() else msg
    text = part.get_content() if part is not None else ""
    match = CODE_LINE.search(text)
    return match.group(1).replace(" ", "") if match else None


def codes_to(messages: list, email: str) -> list[str]:
    """Every code mailed to ``email``, oldest first."""
    return [code for msg in messages if msg["To"] == email and (code := body_code(msg)) is not None]


def code_from(messages: list, email: str) -> str:
    """The code of the newest code email to ``email``."""
    found = codes_to(messages, email)
    if not found:
        raise AssertionError(f"no code email to {email}")
    return found[-1]


def signup_events(
    count: int, tag: str, first_created_at: int | None = None, per_second: int = 0, pow_bits: int = 8
) -> list[Event]:
    """``count`` signed request_account events to DVM_KEY, each from a new key, created now or,
    ``per_second`` sharing each second, from ``first_created_at`` on."""
    start = int(time.time()) if first_created_at is None else first_created_at
    return [
        build_request(
            Encryptor(SecretKey.generate()),
            DVM_KEY.pubkey_hex,
            "request_account",
            {"email": f"{tag}{i}@example.org"},
            start + (i // per_second if per_second else 0),
            pow_bits=pow_bits,
        )
        for i in range(count)
    ]

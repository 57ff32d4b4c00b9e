"""``sigit-dvm check-config``: everything that would stop the daemon or break a signup, found at once.

Each problem is one line naming the setting (``mail.port``, ``relays.toml``, ``secret dvm_key``).
Without ``--connect`` nothing leaves the machine; with it the SMTP server gets EHLO, STARTTLS or
TLS and AUTH (no message is sent) and each relay a subscription with ``limit`` 0. Any error
exits 2.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import orjson
import websockets
from websockets.asyncio.client import connect as ws_connect

from dvm.config import (
    SECRETS,
    Problem,
    Settings,
    SettingsError,
    load_relays,
    optional_secret,
    read_secret,
    read_settings,
)
from dvm.errors import ConfigError, InvalidEmail
from dvm.keyfile import parse_secret
from dvm.mailer.kinds import SAMPLE_AT, SPECS
from dvm.mailer.templates import TemplateContext, Templates
from dvm.probe.target import parse_name
from dvm.protocol.email_address import normalise_email
from dvm.relays import messages
from dvm.store import backends, postgres
from dvm.store.database import StoreError

EXIT_OK, EXIT_ERRORS = 0, 2
CONNECT_TIMEOUT_S = 10.0


@dataclass
class Report:
    """Problems (errors and warnings), connection results, and what was understood."""

    problems: list[Problem] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    def add(self, setting: str, message: str, *, warning: bool = False) -> None:
        self.problems.append(Problem(setting, message, warning))


def check(config: str | None, *, connect: bool = False, environ: Mapping[str, str] | None = None) -> Report:
    """Every check; ``connect`` adds the SMTP server and each relay."""
    report = Report()
    try:
        settings, problems = read_settings(config, environ)
    except ConfigError as exc:
        report.add("settings file", str(exc))
        return report
    report.problems.extend(problems)
    report.facts["settings"] = str(Path(config).resolve()) if config else "(defaults)"
    secrets = _secrets(settings, report, environ)
    relays = _relays(settings, report)
    _templates(settings, report)
    _store(settings, report)
    _probe(settings, report, environ)
    if connect:
        asyncio.run(_connect_all(settings, secrets, relays, report))
    return report


def preflight(settings: Settings) -> None:
    """What ``run`` checks before starting, beyond the settings themselves: relays.toml, the mail
    templates and the database's directory (the daemon would otherwise start and fail later, or
    serve with every mail going dead). Raises :class:`SettingsError` naming every error."""
    report = Report()
    _relays(settings, report)
    _templates(settings, report)
    _store(settings, report)
    if report.errors:
        raise SettingsError(report.errors)


def _secrets(settings: Settings, report: Report, environ: Mapping[str, str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    wanted = [("dvm_key", settings.daemon.key_file), ("code_secret", settings.daemon.code_secret_file)]
    if settings.mail.backend == "smtp" and settings.mail.username:
        wanted.append(("smtp_password", settings.mail.password_file))
    if settings.store.url:
        wanted.append(("store_password", settings.store.password_file))
    for name, file_setting in wanted:
        try:
            if name == "store_password":
                found[name] = optional_secret(name, file_setting, settings, environ)
            else:
                found[name] = read_secret(name, file_setting, settings, environ)
        except ConfigError as exc:
            report.add(f"secret {name}", str(exc).removeprefix(f"secret {name} "))
            continue
        path = settings.path(file_setting) if file_setting else None
        if path is not None and not path.is_file():  # the secret came from elsewhere: say so
            report.add(
                SECRETS[name],
                f"{path} does not exist; the {name} credential (or environment variable) is used "
                "instead: fix or remove the setting",
                warning=True,
            )
    if "dvm_key" in found:
        try:
            key = parse_secret(found["dvm_key"])
            report.facts["pubkey"] = key.pubkey_hex
        except ConfigError as exc:
            report.add("secret dvm_key", str(exc))
            del found["dvm_key"]
    if "code_secret" in found and len(found["code_secret"].encode()) < 16:
        report.add("secret code_secret", "must be at least 16 characters (e.g. 32 random bytes as hex)")
    return found


def _probe(settings: Settings, report: Report, environ: Mapping[str, str] | None) -> None:
    """``[probe]`` (read by ``sigit-dvm probe`` only): an address, a DVM name and a mailbox it
    can use, and the IMAP password when the mailbox needs one."""
    probe = settings.probe
    if probe.email:
        try:
            normalise_email(probe.email)
        except InvalidEmail as exc:
            report.add("probe.email", str(exc))
    if probe.dvm:
        try:
            parse_name(probe.dvm)
        except ConfigError as exc:
            report.add("probe.dvm", str(exc).removeprefix("--dvm: "))
    if probe.mailbox.startswith(("imap://", "imaps://")):
        try:
            if not optional_secret("probe_mailbox_password", probe.mailbox_password_file, settings, environ):
                report.add(
                    "probe.mailbox", "an IMAP mailbox needs the secret probe_mailbox_password", warning=True
                )
        except ConfigError as exc:
            report.add(
                "secret probe_mailbox_password", str(exc).removeprefix("secret probe_mailbox_password ")
            )
    elif "://" in probe.mailbox:
        report.add("probe.mailbox", "must be a directory, or an imap:// or imaps:// URL")


def _relays(settings: Settings, report: Report) -> tuple[str, ...]:
    path = settings.path(settings.relays.relays_file)
    try:
        relays = load_relays(path)
    except ConfigError as exc:
        report.add("relays.relays_file", str(exc))
        return ()
    report.facts["relays"] = list(relays)
    return relays


def _templates(settings: Settings, report: Report) -> None:
    mail = settings.mail
    directory = settings.path(mail.templates_dir) if mail.templates_dir else None
    if directory is not None and not directory.is_dir():
        report.add("mail.templates_dir", f"{directory} is not a directory")
        return
    try:
        context = TemplateContext(mail.link_template, mail.support_url, mail.code_in_subject)
        templates = Templates(context, directory)  # every file of every language, checked
        for lang in [None, *templates.languages]:
            for spec in SPECS.values():
                templates.render(spec.kind, "user@example.org", dict(spec.sample), SAMPLE_AT, lang)
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        report.add("mail.templates_dir", str(exc))
        return
    report.facts["mail languages"] = ["default", *templates.languages]


def _store(settings: Settings, report: Report) -> None:
    if settings.store.url:  # PostgreSQL: reached only with --connect (_database)
        report.facts["database"] = settings.store.redacted_url()
        if not postgres.available():
            report.add("store.url", "psycopg is not installed (pip install 'sigit-dvm[postgresql]')")
        return
    path = settings.path(settings.store.path)
    report.facts["database"] = str(path)
    who = "this user"
    with_service = " (the service's dynamic user owns /var/lib/<StateDirectory>)"
    if not path.parent.is_dir():
        # /var/lib/<name> is the unit's StateDirectory=: systemd creates it at the first start.
        state_dir = path.parent.parent == Path("/var/lib") and path.parent.parent.is_dir()
        report.add(
            "store.path",
            f"directory {path.parent} does not exist"
            + (" yet (the unit's StateDirectory= creates it at start)" if state_dir else ""),
            warning=state_dir,
        )
    elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
        report.add("store.path", f"{path} is not writable by {who}")
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        report.add("store.path", f"directory {path.parent} is not writable by {who}" + with_service)
    if settings.mail.backend == "file":
        outbox = settings.path(settings.mail.outbox_dir)
        parent = outbox if outbox.exists() else outbox.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            report.add("mail.outbox_dir", f"{parent} is not writable by {who}")


# --- --connect ---------------------------------------------------------------------------------


async def _connect_all(
    settings: Settings, secrets: dict[str, str], relays: tuple[str, ...], report: Report
) -> None:
    pubkey = str(report.facts.get("pubkey", "0" * 64))
    jobs = [_relay(url, settings.service.request_kind, pubkey, report) for url in relays]
    if settings.mail.backend == "smtp":
        jobs.append(_smtp(settings, secrets.get("smtp_password", ""), report))
    if settings.store.url:
        jobs.append(asyncio.to_thread(_database, settings, report))
    await asyncio.gather(*jobs)


def _database(settings: Settings, report: Report) -> None:
    """PostgreSQL: connect, and say the schema version (nothing is created or migrated)."""
    name = f"database {settings.store.redacted_url()}"
    try:
        password = optional_secret("store_password", settings.store.password_file, settings)
        version = backends.version_of(settings.store.url, Path(), password)
    except (ConfigError, StoreError) as exc:
        report.add("store.url", str(exc))
        return
    state = "empty (the daemon or `migrate` creates the schema)" if version == 0 else f"schema {version}"
    report.connected.append(f"{name}: connected, {state}")


async def _smtp(settings: Settings, password: str, report: Report) -> None:
    mail = settings.mail
    name = f"smtp {mail.host}:{mail.port}"
    client = aiosmtplib.SMTP(
        hostname=mail.host,
        port=mail.port,
        use_tls=mail.tls == "implicit",
        start_tls=mail.tls == "starttls",
        timeout=min(mail.timeout_s, CONNECT_TIMEOUT_S),
    )
    steps = []
    try:
        await client.connect()  # EHLO, and STARTTLS with start_tls
        steps.append({"none": "connected (no TLS)", "starttls": "STARTTLS", "implicit": "TLS"}[mail.tls])
        if mail.username:
            await client.login(mail.username, password)
            steps.append(f"AUTH as {mail.username}")
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        report.add("mail.host", f"{name}: {type(exc).__name__}: {exc}".rstrip(": "))
        return
    finally:
        client.close()
    report.connected.append(f"{name}: {', '.join(steps)} ok (no message sent)")


async def _relay(url: str, kind: int, pubkey: str, report: Report) -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            async with ws_connect(url, open_timeout=CONNECT_TIMEOUT_S) as ws:
                await ws.send(messages.req("sigit-check", {"kinds": [kind], "#p": [pubkey], "limit": 0}))
                ended = False
                async for raw in ws:
                    msg = messages.parse_relay_message(raw)
                    if isinstance(msg, messages.EoseMsg):
                        ended = True
                        break
                    if isinstance(msg, messages.ClosedMsg):
                        report.add(
                            "relays.relays_file", f"relay {url} refused the subscription: {msg.message}"
                        )
                        return
                    if isinstance(msg, messages.AuthMsg):
                        report.add("relays.relays_file", f"relay {url} asks for AUTH (NIP-42)", warning=True)
                if not ended:
                    report.add("relays.relays_file", f"relay {url} closed the connection before EOSE")
                    return
                await ws.send(messages.close("sigit-check"))
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
        report.add("relays.relays_file", f"relay {url}: {type(exc).__name__}: {exc}".rstrip(": "))
        return
    ms = (time.monotonic() - started) * 1000
    report.connected.append(f"relay {url}: subscribed ({ms:.0f} ms to end of stored events)")


# --- output -----------------------------------------------------------------------------------


def run(
    config: str | None, *, connect: bool = False, as_json: bool = False, before: Sequence[Problem] = ()
) -> int:
    """Print the report (a line per problem and per connection) and return the exit code;
    ``before``: problems the command line itself had (``--credentials-dir``)."""
    report = check(config, connect=connect)
    report.problems[:0] = before
    if as_json:
        data = {
            "ok": not report.errors,
            "errors": [{"setting": p.setting, "message": p.message} for p in report.errors],
            "warnings": [{"setting": p.setting, "message": p.message} for p in report.problems if p.warning],
            "connected": report.connected,
            **report.facts,
        }
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        for problem in report.problems:
            print(f"{'warning' if problem.warning else 'error'}: {problem}")
        for line in report.connected:
            print(f"ok: {line}")
        if report.errors:
            print(f"{len(report.errors)} error(s); the daemon would not start or would not serve")
        else:
            print("configuration OK")
            for key, value in report.facts.items():
                print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return EXIT_ERRORS if report.errors else EXIT_OK

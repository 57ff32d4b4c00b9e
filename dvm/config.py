"""Settings: a TOML file, overridden by ``SIGIT_<SECTION>_<NAME>`` environment variables,
validated once into frozen dataclasses.

Secrets (the DVM key, the code HMAC secret, the SMTP password) never come from the TOML file:
they are read from files named in it, from systemd credentials (``$CREDENTIALS_DIRECTORY``), or
from the environment. Relays live in their own file (``relays.toml``) so SIGHUP can reload them.
Every setting is documented in docs/operations.md; a test fails if one is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dvm.accounts.rules import AccountRules
from dvm.errors import ConfigError, InvalidEmail
from dvm.nostr.encoding import is_digits
from dvm.protocol.email_address import normalise_email
from dvm.protocol.intake import DEFAULT_POW_BITS, IntakeRules
from dvm.protocol.methods import Method, RequestLimits
from dvm.rules import ServiceRules

ENV_PREFIX = "SIGIT_"


# One source for every default: the settings start from the rules' own defaults.
_SERVICE = ServiceRules()
_INTAKE, _ACCOUNTS, _LIMITS = _SERVICE.intake, _SERVICE.accounts, _SERVICE.intake.request_limits


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Protocol and account rules (docs/protocol.md states their meaning)."""

    request_kind: int = _INTAKE.request_kind
    created_at_window_s: int = _INTAKE.created_at_window_s
    reply_ttl_s: int = _SERVICE.reply_ttl_s
    empty_success_replies: bool = _SERVICE.empty_success
    pow_request_account_bits: int = DEFAULT_POW_BITS[Method.REQUEST_ACCOUNT]
    pow_request_login_bits: int = DEFAULT_POW_BITS[Method.REQUEST_LOGIN]
    pow_other_bits: int = DEFAULT_POW_BITS[Method.VERIFY_CODE]
    code_ttl_s: int = _ACCOUNTS.code_ttl_s
    max_code_attempts: int = _ACCOUNTS.max_code_attempts
    max_codes_per_email_per_hour: int = _ACCOUNTS.max_codes_per_email_per_hour
    max_codes_per_domain_per_hour: int = _ACCOUNTS.max_codes_per_domain_per_hour
    max_codes_per_hour: int = _ACCOUNTS.max_codes_per_hour
    code_window_s: int = _ACCOUNTS.code_window_s
    code_failures_free: int = _ACCOUNTS.code_failures_free
    code_failure_window_s: int = _ACCOUNTS.code_failure_window_s
    resend_cooldown_s: int = _ACCOUNTS.resend_cooldown_s
    activation_window_s: int = _ACCOUNTS.activation_window_s
    account_session_s: int = _ACCOUNTS.account_session_s
    max_backup_bytes: int = _LIMITS.max_backup_bytes
    max_email_chars: int = _LIMITS.max_email_chars
    email_grace_s: int = _ACCOUNTS.email_grace_s
    private_mode: bool = _ACCOUNTS.private_mode
    accept_unproven_keys: bool = _INTAKE.accept_unproven_keys

    def rules(self) -> ServiceRules:
        pow_bits = dict.fromkeys(Method, self.pow_other_bits) | {
            Method.REQUEST_ACCOUNT: self.pow_request_account_bits,
            Method.REGISTER: self.pow_request_account_bits,
            Method.REQUEST_LOGIN: self.pow_request_login_bits,
        }
        limits = RequestLimits(max_email_chars=self.max_email_chars, max_backup_bytes=self.max_backup_bytes)
        return ServiceRules(
            intake=IntakeRules(
                self.request_kind, self.created_at_window_s, pow_bits, limits, self.accept_unproven_keys
            ),
            accounts=AccountRules(
                code_ttl_s=self.code_ttl_s,
                max_code_attempts=self.max_code_attempts,
                max_codes_per_email_per_hour=self.max_codes_per_email_per_hour,
                max_codes_per_domain_per_hour=self.max_codes_per_domain_per_hour,
                max_codes_per_hour=self.max_codes_per_hour,
                code_window_s=self.code_window_s,
                code_failures_free=self.code_failures_free,
                code_failure_window_s=self.code_failure_window_s,
                resend_cooldown_s=self.resend_cooldown_s,
                activation_window_s=self.activation_window_s,
                account_session_s=self.account_session_s,
                email_grace_s=self.email_grace_s,
                private_mode=self.private_mode,
            ),
            reply_ttl_s=self.reply_ttl_s,
            empty_success=self.empty_success_replies,
        )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    path: str = "sigit-dvm.sqlite3"  # the SQLite file, unless url names PostgreSQL
    batch_max: int = 64
    url: str = ""  # postgresql://user@host/db: several daemons share it (docs/operations.md)
    password_file: str = ""  # the PostgreSQL password, when the URL and libpq's files have none
    takeover_s: float = 3.0  # several daemons: another's request undecided this long is decided here

    def redacted_url(self) -> str:
        """The URL without a password in it (for logs and reports)."""
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", self.url)


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where and how mail goes out, and what it says."""

    backend: str = "smtp"  # smtp | file
    host: str = "127.0.0.1"
    port: int = 25
    tls: str = "none"  # none | starttls | implicit
    username: str = ""
    password_file: str = ""
    timeout_s: float = 30.0
    from_address: str = "sigit@localhost"
    from_name: str = "SIGit"
    reply_to: str = ""
    support_url: str = ""
    link_template: str = "https://sigit.io/#/verify?code={code}"
    code_in_subject: bool = False
    templates_dir: str = ""
    outbox_dir: str = "mail-outbox"
    concurrency: int = 2
    max_attempts: int = 8
    retry_base_s: float = 5.0
    retry_max_s: float = 900.0
    poll_s: float = 1.0


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Connections to relays (the list itself is in relays_file)."""

    relays_file: str = "relays.toml"
    reconnect_base_s: float = 1.0
    reconnect_max_s: float = 60.0
    since_margin_s: int = 120
    catchup_page_limit: int = 500  # the ``limit`` of each page the catch-up asks for
    catchup_max_s: float = 300.0  # a catch-up pages back for at most this long
    publish_retry_base_s: float = 2.0
    publish_retry_max_s: float = 300.0
    publish_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    key_file: str = ""
    code_secret_file: str = ""
    log_format: str = "text"  # text | json
    log_level: str = "info"
    max_in_flight: int = 256
    drain_timeout_s: float = 10.0
    open_workers: int = 1
    per_key_burst: int = 30
    per_key_per_s: float = 1.0
    refusal_replies_burst: int = 20
    refusal_replies_per_s: float = 5.0
    name: str = "SIGit account service"
    about: str = "Email signup and login for SIGit, over Nostr."
    nip05_domain: str = ""  # the website's domain: the kind 0 profile names the DVM dvm@<domain>


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """The optional HTTP listener for /healthz, /readyz and /metrics (dvm.health)."""

    listen: str = ""  # "" (off), "PORT" (127.0.0.1) or "HOST:PORT"
    max_mail_backlog_s: int = 900
    probe_interval_s: float = 5.0
    max_connections: int = 16  # served at once; more are closed unanswered (no thread per client)
    request_timeout_s: float = 5.0  # to send a whole request and take the answer


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long rows that grow with traffic are kept (dvm.store.retention)."""

    interval_s: float = 300.0
    request_keep_s: int = 0  # past the replay horizon (created_at window + since margin)
    mail_s: int = 30 * 86400
    unverified_s: int = 7 * 86400
    audit_s: int = 365 * 86400
    batch_rows: int = 500
    vacuum_pages: int = 2000


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """``sigit-dvm probe``: the address it signs up and where it reads its code (dvm.probe)."""

    email: str = ""  # the probe's address (a mailbox of the operator's)
    dvm: str = ""  # npub, hex or NIP-05 name; "": the DVM key, else dvm@<daemon.nip05_domain>
    mailbox: str = ""  # a directory (Maildir, .eml files) or imap[s]://user@host[:port][/folder]
    mailbox_password_file: str = ""  # the IMAP password, as the secret probe_mailbox_password
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Settings:
    service: ServiceSettings = field(default_factory=ServiceSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    relays: RelaySettings = field(default_factory=RelaySettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    base_dir: Path = Path()

    def path(self, value: str) -> Path:
        """A path setting, relative to the settings file's directory."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


SECTIONS: dict[str, type] = {
    "service": ServiceSettings,
    "store": StoreSettings,
    "mail": MailSettings,
    "relays": RelaySettings,
    "daemon": DaemonSettings,
    "health": HealthSettings,
    "retention": RetentionSettings,
    "probe": ProbeSettings,
}
CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("mail", "backend"): frozenset({"smtp", "file"}),
    ("mail", "tls"): frozenset({"none", "starttls", "implicit"}),
    ("daemon", "log_format"): frozenset({"text", "json"}),
    ("daemon", "log_level"): frozenset({"debug", "info", "warning", "error"}),
}


RENAMED = {
    "service.code_failures_free_per_day": (
        "replaced in 0.2.0 by service.code_failures_free (wrong codes within service.code_failure_window_s, "
        "7 days by default, before a mailbox's codes turn long)"
    ),
    "service.code_failure_backoff_s": (
        "removed in 0.2.0: wrong codes no longer delay anyone's codes (they turn long)"
    ),
}
"""Settings of earlier versions, with what an operator should do about each."""

DAY_S = 86400
RANGES: dict[str, tuple[float, float]] = {
    "service.request_kind": (5700, 5899),  # NIP-90 job requests; replies are kind + 1000
    "service.created_at_window_s": (30, DAY_S),
    "service.reply_ttl_s": (60, 30 * DAY_S),
    "service.pow_request_account_bits": (0, 32),
    "service.pow_request_login_bits": (0, 32),
    "service.pow_other_bits": (0, 32),
    "service.code_ttl_s": (60, DAY_S),
    "service.max_code_attempts": (1, 100),
    "service.max_codes_per_email_per_hour": (1, 1_000_000),
    "service.max_codes_per_domain_per_hour": (1, 100_000_000),
    "service.max_codes_per_hour": (1, 100_000_000),
    "service.code_window_s": (60, DAY_S),
    "service.code_failures_free": (1, 1000),
    "service.code_failure_window_s": (3600, 90 * DAY_S),
    "service.resend_cooldown_s": (0, 3600),
    "service.activation_window_s": (60, 7 * DAY_S),
    "service.account_session_s": (0, 30 * DAY_S),
    "service.max_backup_bytes": (64, 60_000),  # the reply carrying it must fit NIP-44's 65535 bytes
    "service.max_email_chars": (6, 254),
    "service.email_grace_s": (60, 90 * DAY_S),
    "store.batch_max": (1, 10_000),
    "store.takeover_s": (0.5, 600),
    "mail.port": (1, 65535),
    "mail.timeout_s": (1, 600),
    "mail.concurrency": (1, 64),
    "mail.max_attempts": (1, 100),
    "mail.retry_base_s": (0.1, DAY_S),
    "mail.retry_max_s": (0.1, 7 * DAY_S),
    "mail.poll_s": (0.05, 3600),
    "relays.reconnect_base_s": (0.1, 3600),
    "relays.reconnect_max_s": (0.1, DAY_S),
    "relays.since_margin_s": (0, DAY_S),
    "relays.catchup_page_limit": (1, 100_000),
    "relays.catchup_max_s": (1, DAY_S),
    "relays.publish_retry_base_s": (0.1, 3600),
    "relays.publish_retry_max_s": (0.1, DAY_S),
    "relays.publish_timeout_s": (0.5, 300),
    "daemon.max_in_flight": (1, 100_000),
    "daemon.drain_timeout_s": (0.1, 600),
    "daemon.open_workers": (0, 64),
    "daemon.per_key_burst": (0, 100_000),
    "daemon.per_key_per_s": (0.001, 10_000),
    "daemon.refusal_replies_burst": (0, 100_000),
    "daemon.refusal_replies_per_s": (0.001, 10_000),
    "health.max_mail_backlog_s": (10, 7 * DAY_S),
    "health.probe_interval_s": (0.1, 300),
    "health.max_connections": (1, 1024),
    "health.request_timeout_s": (0.1, 300),
    "retention.interval_s": (1, DAY_S),
    "retention.request_keep_s": (0, 3650 * DAY_S),
    "retention.mail_s": (60, 3650 * DAY_S),
    "retention.unverified_s": (60, 3650 * DAY_S),
    "retention.audit_s": (60, 36500 * DAY_S),
    "retention.batch_rows": (1, 100_000),
    "retention.vacuum_pages": (0, 1_000_000),
    "probe.timeout_s": (5, 3600),
}
"""Inclusive bounds of every numeric setting (a test checks none is missing)."""
BROWSER_POW_BITS = 20
"""More PoW than this takes a browser many seconds (DESIGN.md: about 7 s for 20 bits)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong (or, with ``warning``, doubtful) with one setting, named as operators write it."""

    setting: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class SettingsError(ConfigError):
    """Settings that cannot run: every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        first = str(problems[0])
        more = f" (and {len(problems) - 1} more; run sigit-dvm check-config)" if len(problems) > 1 else ""
        super().__init__(first + more)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if given), apply environment overrides and validate everything."""
    settings, problems = read_settings(path, environ)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise SettingsError(errors)
    return settings


def read_settings(
    path: str | Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Settings, list[Problem]]:
    """The settings and every problem with them (a bad value is replaced by its default).

    Only a settings file that cannot be read or parsed raises :class:`ConfigError`.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file {file} not found") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read settings file {file}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        base_dir = file.resolve().parent
    problems = [
        Problem(f"[{name}]", "unknown settings section") for name in sorted(set(data) - set(SECTIONS))
    ]
    sections = {
        name: _section(name, cls, data.get(name, {}), environ, problems) for name, cls in SECTIONS.items()
    }
    settings = Settings(**sections, base_dir=base_dir)
    return settings, problems + validate(settings) + environment_problems(environ)


def _section(name: str, cls: type, table: object, environ: Mapping[str, str], problems: list[Problem]) -> Any:
    if not isinstance(table, dict):
        problems.append(Problem(f"[{name}]", "must be a table"))
        table = {}
    names = {f.name for f in dataclasses.fields(cls)}
    problems.extend(
        Problem(f"{name}.{key}", RENAMED.get(f"{name}.{key}", "unknown setting"))
        for key in sorted(set(table) - names)
    )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_name = f"{ENV_PREFIX}{name}_{f.name}".upper()
        where, raw, from_env = f"{name}.{f.name}", table.get(f.name), False
        if env_name in environ:
            where, raw, from_env = env_name, environ[env_name], True
        elif f.name not in table:
            continue
        try:
            value = _coerce(hints[f.name], raw, from_env=from_env)
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        choices = CHOICES.get((name, f.name))
        if choices and value not in choices:
            problems.append(Problem(where, f"must be one of {sorted(choices)} (got {value!r})"))
            continue
        values[f.name] = value
    return cls(**values)


def _coerce(hint: Any, value: object, *, from_env: bool) -> Any:
    target = hint if not isinstance(hint, types.UnionType) else typing.get_args(hint)[0]
    if target is bool:
        if from_env and isinstance(value, str):
            if value.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError("must be a boolean")
            return value.lower() in {"1", "true", "yes"}
        if isinstance(value, bool):
            return value
    elif target is int:
        digits = value.strip().lstrip("-") if from_env and isinstance(value, str) else ""
        if is_digits(digits):
            return int(str(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif target is float:
        if from_env and isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif target is str and isinstance(value, str):
        return value
    raise ValueError(f"must be of type {getattr(target, '__name__', target)} (got {value!r})")


def validate(settings: Settings) -> list[Problem]:
    """Every setting's range and meaning that needs no file or network (dvm.checks does those)."""
    problems: list[Problem] = []
    for name in SECTIONS:
        section = getattr(settings, name)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            bounds = RANGES.get(f"{name}.{f.name}")
            if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            low, high = bounds
            if not low <= value <= high:
                problems.append(
                    Problem(
                        f"{name}.{f.name}",
                        f"must be between {_number(low)} and {_number(high)} (got {value})",
                    )
                )
    problems.extend(_meaning(settings))
    problems.extend(_operator_slips(settings))
    return problems


def _number(value: float) -> str:
    """A bound as written in the settings: ``315360000``, ``0.05`` (never ``3.1536e+08``)."""
    return str(int(value)) if float(value).is_integer() else repr(value)


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _operator_slips(settings: Settings) -> list[Problem]:
    """Settings that load but would not do what their writer meant (issue 25's check-config misses)."""
    out: list[Problem] = []
    mail, store = settings.mail, settings.store
    others = sorted(set(_PLACEHOLDER.findall(mail.link_template)) - {"{code}"})
    if others:
        out.append(
            Problem(
                "mail.link_template",
                f"only {{code}} is filled in; {others[0]} would reach users as it is written "
                "(and an address in a link would leak it to the website's logs)",
            )
        )
    if any(_breaks_header(c) for c in mail.from_name):
        out.append(
            Problem(
                "mail.from_name",
                f"has a control or line-breaking character ({mail.from_name!r}): no mail could be "
                "built with it in its From header",
            )
        )
    if "<" in mail.from_address or " " in mail.from_address.strip():
        out.append(
            Problem(
                "mail.from_address",
                f"is the address alone ({mail.from_address!r} looks like 'Name <address>'): put the "
                "name in mail.from_name",
            )
        )
    if store.url:
        try:
            parts = urlsplit(store.url)
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError as exc:
            out.append(Problem("store.url", f"is not a valid URL ({exc}): {store.redacted_url()}"))
        else:
            if parts.password:
                out.append(
                    Problem(
                        "store.url",
                        "holds a password, and the settings file is readable by every user: use "
                        "store.password_file or the store_password credential instead",
                    )
                )
    return out


def _breaks_header(char: str) -> bool:
    """A character no header may carry: a control or format character, or one Python's email
    package breaks lines at (``str.splitlines``: form feed, ``\x1c``-``\x1e``, NEL, U+2028...)."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") or len(f"a{char}b".splitlines()) > 1


def environment_problems(environ: Mapping[str, str]) -> list[Problem]:
    """``SIGIT_*`` variables that name nothing: a typo (``SIGIT_MAIL_HOSTT``) would otherwise
    leave the setting it meant at its default, silently. One naming a known section is an error,
    as an unknown setting in the file is; any other a warning."""
    known = {ENV_PREFIX + "CONFIG"} | {f"{ENV_PREFIX}{name}".upper() for name in SECRETS}
    for section, cls in SECTIONS.items():
        known |= {f"{ENV_PREFIX}{section}_{f.name}".upper() for f in dataclasses.fields(cls)}
    out = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        section = name.removeprefix(ENV_PREFIX).split("_", 1)[0].lower()
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        out.append(Problem(name, f"unknown environment variable{hint}", warning=section not in SECTIONS))
    return out


def _meaning(settings: Settings) -> list[Problem]:
    service, mail, relays, daemon = settings.service, settings.mail, settings.relays, settings.daemon
    out: list[Problem] = []

    def check(ok: bool, setting: str, message: str, *, warning: bool = False) -> None:
        if not ok:
            out.append(Problem(setting, message, warning))

    for name in ("pow_request_account_bits", "pow_request_login_bits", "pow_other_bits"):
        bits = getattr(service, name)
        check(
            bits <= BROWSER_POW_BITS or bits > 32,
            f"service.{name}",
            f"{bits} bits takes a browser many seconds (about 7 s at 20 bits; each bit doubles it)",
            warning=True,
        )
    check(
        service.resend_cooldown_s < service.code_ttl_s,
        "service.resend_cooldown_s",
        "must be shorter than service.code_ttl_s",
    )
    for setting, address, required in (
        ("mail.from_address", mail.from_address, True),
        ("mail.reply_to", mail.reply_to, False),
    ):
        if "<" in address:  # a display name: _operator_slips says where it goes
            continue
        if address or required:
            try:
                normalise_email(
                    address.removesuffix("@localhost") + "@localhost.localdomain"
                    if address.endswith("@localhost")
                    else address
                )
            except InvalidEmail as exc:
                out.append(Problem(setting, f"is not an email address ({exc}): {address!r}"))
    check("{code}" in mail.link_template, "mail.link_template", "must contain {code}")
    check(_is_url(mail.link_template, ("https", "http")), "mail.link_template", "must be an http(s) URL")
    check(
        not mail.support_url or _is_url(mail.support_url, ("https", "http", "mailto")),
        "mail.support_url",
        "must be an http(s) or mailto URL",
    )
    check(bool(mail.host.strip()), "mail.host", "must not be empty")
    check(
        not (mail.backend == "smtp" and mail.username and mail.tls == "none" and not _loopback(mail.host)),
        "mail.tls",
        "SMTP AUTH (mail.username) needs starttls or implicit TLS unless the server is on this machine",
    )
    check(mail.retry_max_s >= mail.retry_base_s, "mail.retry_max_s", "must be at least mail.retry_base_s")
    check(
        relays.reconnect_max_s >= relays.reconnect_base_s,
        "relays.reconnect_max_s",
        "must be at least relays.reconnect_base_s",
    )
    check(
        relays.publish_retry_max_s >= relays.publish_retry_base_s,
        "relays.publish_retry_max_s",
        "must be at least relays.publish_retry_base_s",
    )
    check(bool(daemon.name.strip()), "daemon.name", "must not be empty")
    check(bool(settings.store.url or settings.store.path.strip()), "store.path", "must not be empty")
    check(
        not settings.store.url or settings.store.url.startswith(("postgresql://", "postgres://")),
        "store.url",
        "must be a postgresql:// URL (or empty: the SQLite file at store.path)",
    )
    try:
        listen_address(settings.health)
    except ValueError as exc:
        out.append(Problem("health.listen", str(exc)))
    rules = service.rules().accounts
    floor = max(service.code_ttl_s, rules.code_window_s)
    check(
        settings.retention.unverified_s >= floor,
        "retention.unverified_s",
        f"must be at least {floor} s (a code's life and the hourly code limit read those rows)",
    )
    return out


def listen_address(health: HealthSettings) -> tuple[str, int] | None:
    """``health.listen`` as (host, port), or None when the listener is off."""
    text = health.listen.strip()
    if not text:
        return None
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not is_digits(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be PORT or HOST:PORT with a port in 1..65535 (got {text!r})")
    return host, int(port)


def _is_url(text: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in schemes and (bool(parts.netloc) or parts.scheme == "mailto")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- secrets -----------------------------------------------------------------------------------

SECRETS: dict[str, str] = {
    "dvm_key": "daemon.key_file",
    "code_secret": "daemon.code_secret_file",
    "smtp_password": "mail.password_file",
    "store_password": "store.password_file",
    "probe_mailbox_password": "probe.mailbox_password_file",
}
"""Each secret's credential (and file) name, and the setting that may name its file instead."""
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def use_credentials_dir(path: str) -> None:
    """``--credentials-dir``: read secrets from this directory, as systemd's ``$CREDENTIALS_DIRECTORY``."""
    directory = Path(path)
    if not directory.is_dir():
        raise ConfigError(f"credentials directory {directory} does not exist")
    os.environ[CREDENTIALS_ENV] = str(directory.resolve())


def read_secret(
    name: str, file_setting: str, settings: Settings, environ: Mapping[str, str] | None = None
) -> str:
    """A secret from, in order: ``SIGIT_<NAME>``, ``$CREDENTIALS_DIRECTORY/<name>``, the file setting."""
    environ = os.environ if environ is None else environ
    env_name = f"{ENV_PREFIX}{name}".upper().replace("-", "_")
    if environ.get(env_name):
        return environ[env_name].strip()
    creds = environ.get(CREDENTIALS_ENV)
    if creds and (Path(creds) / name).is_file():
        return _read(Path(creds) / name, name)
    if file_setting:
        return _read(settings.path(file_setting), name)
    where = f"{SECRETS[name]}, " if name in SECRETS else ""
    raise ConfigError(
        f"secret {name} is not configured (a file {name} in --credentials-dir or "
        f"${CREDENTIALS_ENV}, {where}or {env_name})"
    )


def optional_secret(
    name: str, file_setting: str, settings: Settings, environ: Mapping[str, str] | None = None
) -> str:
    """A secret that may be absent (``store_password``: libpq may find it itself): '' if no
    source names it, else as :func:`read_secret` (an unreadable file is still an error)."""
    environ = os.environ if environ is None else environ
    creds = environ.get(CREDENTIALS_ENV)
    named = environ.get(f"{ENV_PREFIX}{name}".upper()) or (creds and (Path(creds) / name).is_file())
    if not named and not file_setting:
        return ""
    return read_secret(name, file_setting, settings, environ)


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read secret {name} from {path}: {reason}") from exc


def operator_error(exc: BaseException) -> str:
    """One line for an error an operator caused (a path, a permission), without a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


# --- relays.toml -------------------------------------------------------------------------------


def load_relays(path: Path) -> tuple[str, ...]:
    """The relay URLs of ``relays.toml``: ``relays = ["wss://...", ...]``, at least one."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"relays file {path} not found") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read relays file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - {"relays"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (only 'relays')")
    relays = data.get("relays", [])
    if not isinstance(relays, list) or not all(isinstance(url, str) for url in relays):
        raise ConfigError(f"{path}: relays must be a list of URLs")
    if not relays:
        raise ConfigError(f"{path}: no relays: the daemon would serve nobody")
    for url in relays:
        problem = relay_url_problem(url)
        if problem:
            raise ConfigError(f"{path}: {url!r} {problem}")
    return tuple(dict.fromkeys(url.rstrip("/") for url in relays))


def relay_url_problem(url: str) -> str:
    """Why ``url`` is not a usable relay URL, or ''."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("ws", "wss"):
        return "is not a ws:// or wss:// URL"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    return ""

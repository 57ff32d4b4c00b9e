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
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvm.accounts.rules import AccountRules
from dvm.errors import ConfigError
from dvm.protocol.intake import DEFAULT_POW_BITS, DEFAULT_REQUEST_KIND, IntakeRules
from dvm.protocol.methods import Method, RequestLimits
from dvm.rules import ServiceRules

ENV_PREFIX = "SIGIT_"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Protocol and account rules (docs/protocol.md states their meaning)."""

    request_kind: int = DEFAULT_REQUEST_KIND
    created_at_window_s: int = 600
    reply_ttl_s: int = 3600
    empty_success_replies: bool = False
    pow_request_account_bits: int = DEFAULT_POW_BITS[Method.REQUEST_ACCOUNT]
    pow_request_login_bits: int = DEFAULT_POW_BITS[Method.REQUEST_LOGIN]
    pow_other_bits: int = DEFAULT_POW_BITS[Method.VERIFY_CODE]
    code_ttl_s: int = 900
    max_code_attempts: int = 5
    max_codes_per_email_per_hour: int = 5
    max_codes_per_domain_per_hour: int = 300
    max_codes_per_hour: int = 3000
    code_failures_free_per_day: int = 10
    code_failure_backoff_s: int = 60
    max_code_failures_per_day: int = 30
    resend_cooldown_s: int = 60
    activation_window_s: int = 3600
    account_session_s: int = 3600
    max_backup_bytes: int = 4096
    max_email_chars: int = 254
    email_grace_s: int = 7 * 24 * 3600
    private_mode: bool = False

    def rules(self) -> ServiceRules:
        pow_bits = dict.fromkeys(Method, self.pow_other_bits) | {
            Method.REQUEST_ACCOUNT: self.pow_request_account_bits,
            Method.REGISTER: self.pow_request_account_bits,
            Method.REQUEST_LOGIN: self.pow_request_login_bits,
        }
        limits = RequestLimits(max_email_chars=self.max_email_chars, max_backup_bytes=self.max_backup_bytes)
        return ServiceRules(
            intake=IntakeRules(self.request_kind, self.created_at_window_s, pow_bits, limits),
            accounts=AccountRules(
                code_ttl_s=self.code_ttl_s,
                max_code_attempts=self.max_code_attempts,
                max_codes_per_email_per_hour=self.max_codes_per_email_per_hour,
                max_codes_per_domain_per_hour=self.max_codes_per_domain_per_hour,
                max_codes_per_hour=self.max_codes_per_hour,
                code_failures_free_per_day=self.code_failures_free_per_day,
                code_failure_backoff_s=self.code_failure_backoff_s,
                max_code_failures_per_day=self.max_code_failures_per_day,
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
    path: str = "sigit-dvm.sqlite3"
    batch_max: int = 64


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
class Settings:
    service: ServiceSettings = field(default_factory=ServiceSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    relays: RelaySettings = field(default_factory=RelaySettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
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
}
CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("mail", "backend"): frozenset({"smtp", "file"}),
    ("mail", "tls"): frozenset({"none", "starttls", "implicit"}),
    ("daemon", "log_format"): frozenset({"text", "json"}),
    ("daemon", "log_level"): frozenset({"debug", "info", "warning", "error"}),
}


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if given), apply environment overrides and validate everything."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file {file} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        base_dir = file.resolve().parent
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown settings section [{sorted(unknown)[0]}]")
    sections = {name: _section(name, cls, data.get(name, {}), environ) for name, cls in SECTIONS.items()}
    return Settings(**sections, base_dir=base_dir)


def _section(name: str, cls: type, table: object, environ: Mapping[str, str]) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - names
    if unknown:
        raise ConfigError(f"unknown setting {name}.{sorted(unknown)[0]}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_name = f"{ENV_PREFIX}{name}_{f.name}".upper()
        if env_name in environ:
            values[f.name] = _coerce(f"{env_name}", hints[f.name], environ[env_name], from_env=True)
        elif f.name in table:
            values[f.name] = _coerce(f"{name}.{f.name}", hints[f.name], table[f.name], from_env=False)
        choices = CHOICES.get((name, f.name))
        if choices and f.name in values and values[f.name] not in choices:
            raise ConfigError(f"{name}.{f.name} must be one of {sorted(choices)}")
    settings = cls(**values)
    for f in dataclasses.fields(cls):
        value = getattr(settings, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{name}.{f.name} must not be negative")
    return settings


def _coerce(where: str, hint: Any, value: object, *, from_env: bool) -> Any:
    target = hint if not isinstance(hint, types.UnionType) else typing.get_args(hint)[0]
    if target is bool:
        if from_env and isinstance(value, str):
            if value.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ConfigError(f"{where} must be a boolean")
            return value.lower() in {"1", "true", "yes"}
        if isinstance(value, bool):
            return value
    elif target is int:
        if from_env and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
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
    raise ConfigError(f"{where} must be of type {getattr(target, '__name__', target)}")


# --- secrets -----------------------------------------------------------------------------------


def read_secret(
    name: str, file_setting: str, settings: Settings, environ: Mapping[str, str] | None = None
) -> str:
    """A secret from, in order: ``SIGIT_<NAME>``, ``$CREDENTIALS_DIRECTORY/<name>``, the file setting."""
    environ = os.environ if environ is None else environ
    env_name = f"{ENV_PREFIX}{name}".upper().replace("-", "_")
    if environ.get(env_name):
        return environ[env_name].strip()
    creds = environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / name).is_file():
        return (Path(creds) / name).read_text(encoding="utf-8").strip()
    if file_setting:
        path = settings.path(file_setting)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret {name} from {path}: {exc.strerror}") from exc
    raise ConfigError(f"secret {name} is not configured (set {env_name} or a file)")


# --- relays.toml -------------------------------------------------------------------------------


def load_relays(path: Path) -> tuple[str, ...]:
    """The relay URLs of ``relays.toml``: ``relays = ["wss://...", ...]``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"relays file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - {"relays"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (only 'relays')")
    relays = data.get("relays", [])
    if not isinstance(relays, list) or not all(isinstance(url, str) for url in relays):
        raise ConfigError(f"{path}: relays must be a list of URLs")
    for url in relays:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"{path}: {url!r} is not a ws:// or wss:// URL")
    return tuple(dict.fromkeys(url.rstrip("/") for url in relays))

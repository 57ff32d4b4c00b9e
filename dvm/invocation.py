"""One run of the ``sigit-dvm`` command: what every subcommand shares.

* The global options, ``--config`` and ``--actor``, accepted at every level of the command line
  (``sigit-dvm -c x users delete A`` and ``sigit-dvm users delete A -c x`` are the same), and
  what they lead to: the settings, the database, the actor written to the audit log.
* The output options, ``--json``, ``--csv`` and ``--nl`` (a table when none is given), from one
  decorator: a command returns a :mod:`dvm.admin.render` value and the decorator prints it.
* The exit codes scripts can rely on: 0 done, 1 failure (not found, wrong state, ambiguous prefix,
  run-time error), 2 bad usage or configuration (including a destructive action without ``--yes``).
"""

from __future__ import annotations

import functools
import getpass
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import click

from dvm.accounts.machine import Context
from dvm.admin import render
from dvm.config import Settings, load_settings, optional_secret, read_secret, use_credentials_dir
from dvm.errors import AdminError, ConfigError
from dvm.nostr.encoding import is_digits
from dvm.store import backends
from dvm.store.database import SCHEMA_VERSION
from dvm.store.sealed import ParamsSeal

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "sigit-dvm.toml"
_KEY = "sigit_dvm.invocation"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Invocation:
    """The global options given so far, and what they lead to (read lazily, once)."""

    config: str | None = None
    actor: str | None = None
    output_format: str | None = None  # given on a group (``sigit-dvm users --json list``)
    now: int = field(default_factory=lambda: int(time.time()))
    credentials_error: str = ""  # --credentials-dir named no directory: said when secrets are read
    _settings: Settings | None = None
    _conn: sqlite3.Connection | None = None

    def config_path(self) -> str | None:
        """``--config``, else ``$SIGIT_CONFIG``, else ./sigit-dvm.toml if there is one."""
        path = self.config or os.environ.get("SIGIT_CONFIG")
        if path is None and Path(DEFAULT_CONFIG).exists():
            path = DEFAULT_CONFIG
        return path

    def settings(self) -> Settings:
        if self.credentials_error:
            raise ConfigError(self.credentials_error)
        if self._settings is None:
            self._settings = load_settings(self.config_path())
        return self._settings

    def site_settings(self) -> Settings:
        """The settings of a command that works on the database: from a file, never the defaults
        alone (they would name ./sigit-dvm.sqlite3 wherever the command happens to run)."""
        if self.config_path() is None:
            raise ConfigError(
                "no settings file: give --config PATH or set $SIGIT_CONFIG "
                f"(or run where ./{DEFAULT_CONFIG} is)"
            )
        return self.settings()

    def db(self) -> sqlite3.Connection:
        """The live database at this version's schema. Admin commands never create a database nor
        change its schema (only ``migrate`` and the daemon do): a daemon of another version may be
        running on it."""
        if self._conn is None:
            settings = self.site_settings()
            path = settings.path(settings.store.path)
            where = settings.store.redacted_url() if settings.store.url else str(path)
            if not settings.store.url and not path.exists():
                raise AdminError(f"no database at {path} (store.path in {self.config_path()})")
            version = backends.version_of(settings.store.url, path, self.store_password())
            if version != SCHEMA_VERSION:
                raise AdminError(schema_mismatch(where, version))
            self._conn = backends.connect_any(settings.store.url, path, self.store_password())
        return self._conn

    def store_password(self) -> str:
        """The PostgreSQL password, when a secret names one ('' lets libpq find its own)."""
        store = self.settings().store
        return optional_secret("store_password", store.password_file, self.settings()) if store.url else ""

    def who(self) -> str:
        """The actor for the audit log: ``--actor``, else ``$SUDO_USER``, else the login name."""
        return self.actor or os.environ.get("SUDO_USER") or _login_name()

    def context(self, *, mails: bool) -> Context:
        """What the state machine's ``admin_*`` functions need. ``mails``: the command may queue
        mail (a code or a notice), whose values are sealed with a key derived from the code
        secret, as the daemon seals them: without the real secret the worker could not open
        them and would dead-letter the mail. Commands that mail nobody do not need the secret."""
        settings = self.settings()
        secret = b""
        if mails:
            secret = read_secret("code_secret", settings.daemon.code_secret_file, settings).encode()
        return Context(self.now, secrets.token_bytes, settings.service.rules().accounts, secret)

    def mail_seal(self) -> ParamsSeal:
        """What seals and opens queued mail's values: the daemon's, from the code secret."""
        settings = self.settings()
        return ParamsSeal(read_secret("code_secret", settings.daemon.code_secret_file, settings).encode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def schema_mismatch(where: str, version: int) -> str:
    """Why an admin command will not work on a database of another schema, and what to do."""
    if version == 0:
        return f"{where} has no sigit-dvm schema yet: run 'sigit-dvm migrate' (or start the daemon) first"
    if version < SCHEMA_VERSION:
        return (
            f"{where} has schema {version}, older than this sigit-dvm's ({SCHEMA_VERSION}); admin "
            "commands do not upgrade it. Upgrade with 'sigit-dvm migrate' when the daemon is upgraded "
            'too (an older daemon refuses a newer schema): docs/operations.md, "Upgrades"'
        )
    return (
        f"{where} has schema {version}, newer than this sigit-dvm's ({SCHEMA_VERSION}): "
        "use the sigit-dvm the daemon runs"
    )


def _login_name() -> str:
    """The login name, or ``uid N`` for a user without one (systemd's DynamicUser= outside nss)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def current() -> Invocation:
    """This run's :class:`Invocation` (one per command line, shared by every level)."""
    meta = click.get_current_context().meta
    found = meta.get(_KEY)
    if found is None:
        found = meta[_KEY] = Invocation()
        click.get_current_context().call_on_close(found.close)
    assert isinstance(found, Invocation)
    return found


def _remember(name: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            setattr(current(), name, value)

    return callback


def _one_format(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``--json``, ``--csv`` and ``--nl`` exclude each other, wherever on the line they are."""
    if value:
        inv, wanted = current(), str(param.name)
        if inv.output_format not in (None, wanted):
            raise click.UsageError(
                f"--{inv.output_format} and --{wanted} together: give one output format", ctx
            )
        inv.output_format = wanted
    return value


def _credentials_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        try:
            use_credentials_dir(value)
        except ConfigError as exc:  # told by the command (check-config: as one of its problems)
            current().credentials_error = str(exc)


def global_options(f: Callable[P, R]) -> Callable[P, R]:
    """``--config``, ``--credentials-dir`` and ``--actor``, on the root, every group and every command."""
    f = click.option(
        "--credentials-dir",
        expose_value=False,
        callback=_credentials_dir,
        metavar="DIR",
        help="Read secrets (dvm_key, code_secret, smtp_password, store_password, probe_mailbox_password) "
        "from files in DIR (default: $CREDENTIALS_DIRECTORY, as systemd sets it).",
    )(f)
    f = click.option(
        "--actor",
        expose_value=False,
        callback=_remember("actor"),
        help="Who is acting, for the audit log (default: $SUDO_USER or the login name).",
    )(f)
    return click.option(
        "-c",
        "--config",
        expose_value=False,
        callback=_remember("config"),
        metavar="PATH",
        help=f"Settings file (default: $SIGIT_CONFIG or ./{DEFAULT_CONFIG}).",
    )(f)


def pass_invocation(f: Callable[Concatenate[Invocation, P], R]) -> Callable[P, R]:
    """Call ``f`` with this run's :class:`Invocation` first."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return f(current(), *args, **kwargs)

    return wrapper


_FORMAT_HELP = {
    "json": "Output JSON.",
    "csv": "Output CSV with a header row.",
    "nl": "Output newline-delimited JSON (one object a line).",
}


def output_options(f: Callable[..., render.Output]) -> Callable[..., None]:
    """``--json``, ``--csv`` and ``--nl`` for a command returning a :mod:`~dvm.admin.render` value;
    without one, the format given on its group, else a table. Two different ones are refused."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        result = f(*args, **kwargs)
        inv = current()
        click.echo(render.render(result, inv.output_format or "table", inv.now))

    for fmt in reversed(_FORMAT_HELP):
        wrapper = click.option(
            f"--{fmt}", fmt, is_flag=True, expose_value=False, callback=_one_format, help=_FORMAT_HELP[fmt]
        )(wrapper)
    return wrapper


def group_output_options(f: Callable[P, R]) -> Callable[P, R]:
    """The output options on a group, for its commands (``sigit-dvm sessions --json list``)."""
    for fmt in reversed(_FORMAT_HELP):
        f = click.option(
            f"--{fmt}",
            fmt,
            is_flag=True,
            expose_value=False,
            callback=_one_format,
            help=_FORMAT_HELP[fmt] + " (for the command that follows)",
        )(f)
    return f


class Group(click.Group):
    """A group whose command list shows each command's whole first sentence, wrapped, where
    click would cut it at the terminal's width ("Erase a user (GDPR): account, sessions,...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def confirm(yes: bool, what: str) -> None:
    """Destructive actions need ``--yes`` (exit 2 without it): nothing asks interactively."""
    if not yes:
        raise ConfigError(f"refusing to {what} without --yes")


yes_option = click.option("--yes", is_flag=True, help="Really do it (required: this changes data).")


class Duration(click.ParamType[int, Any]):
    """Seconds, or a number with a unit: ``90``, ``90s``, ``15m``, ``12h``, ``30d``."""

    name = "duration"
    _UNITS: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        unit = self._UNITS.get(text[-1:], 0)
        number = text[:-1] if unit else text
        if not is_digits(number):  # no sign: a negative duration reaches into the future
            self.fail(f"{value!r} is not a duration (seconds, or a number with s, m, h or d)", param, ctx)
        return int(number) * (unit or 1)


DURATION = Duration()

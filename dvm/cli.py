"""The ``sigit-dvm`` command: run the daemon and look after it.

``run``, ``keygen``, ``pubkey`` and ``check-config`` are here; the admins' commands, on the live
database, are in :mod:`dvm.admin.commands`; what every command shares (the global options
``--config`` and ``--actor``, accepted at any level; ``--json``/``--csv``/``--nl``; exit codes) is
in :mod:`dvm.invocation`.

Exit codes scripts can rely on: 0 success, 1 failure (not found, wrong state, run-time error),
2 bad usage or configuration (including a destructive action without ``--yes``). Every error is
one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from dvm import __version__, checks, logformat
from dvm.admin.commands import COMMANDS
from dvm.config import Problem, load_relays, operator_error, optional_secret, read_secret
from dvm.daemon import Daemon, Secrets
from dvm.errors import ConfigError, DVMError, InvalidValue
from dvm.invocation import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Group,
    Invocation,
    global_options,
    pass_invocation,
)
from dvm.keyfile import parse_secret, write_new_key
from dvm.nostr import bech32
from dvm.probe.command import probe_command
from dvm.protocol.announcement import nip05_document
from dvm.store import backends, database
from dvm.store.database import DATABASE_ERRORS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="sigit-dvm", message="%(prog)s %(version)s")
@global_options
def cli() -> None:
    """SIGit's email signup DVM for Nostr: run the daemon, and look after its live database.

    Global options (--config, --credentials-dir, --actor) are accepted at any level; listings print tables, or
    --json, --csv, --nl; destructive actions need --yes; every change is audited.

    \b
    Example:
        sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml users list --search example.org
    """


def _print(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(text)


@cli.command("run")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Override daemon.log_format.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Override daemon.log_level."
)
@global_options
@pass_invocation
def run(inv: Invocation, log_format: str | None, log_level: str | None) -> None:
    """Run the daemon (systemd Type=notify aware).

    \b
    Example:
        sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml run
    """
    settings = inv.settings()
    checks.preflight(settings)  # relays, templates, store directory: refuse now, not later
    logformat.setup(log_format or settings.daemon.log_format, log_level or settings.daemon.log_level)
    daemon = Daemon(settings, Secrets.load(settings))
    asyncio.run(daemon.run())


@cli.command("keygen")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
def keygen(path: str, as_json: bool) -> None:
    """Create a new DVM key in a 0600 file (refuses to overwrite) and print its npub.

    \b
    Example:
        sigit-dvm keygen /etc/sigit-dvm/dvm.key
    """
    key = write_new_key(Path(path))
    _print(
        as_json,
        {"path": path, "pubkey": key.pubkey_hex, "npub": bech32.npub(key.pubkey)},
        f"wrote {path} (mode 0600)\npubkey {key.pubkey_hex}\nnpub   {bech32.npub(key.pubkey)}",
    )


@cli.command("pubkey")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@pass_invocation
def pubkey(inv: Invocation, as_json: bool) -> None:
    """Print the DVM's public key (hex and npub): what the website needs.

    \b
    Example:
        sigit-dvm pubkey
    """
    settings = inv.settings()
    key = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings))
    npub = bech32.npub(key.pubkey)
    _print(as_json, {"pubkey": key.pubkey_hex, "npub": npub}, f"{key.pubkey_hex}\n{npub}")


@cli.command("nip05")
@global_options
@pass_invocation
def nip05(inv: Invocation) -> None:
    """Print the /.well-known/nostr.json body to serve on daemon.nip05_domain (NIP-05: the
    name dvm, the DVM's pubkey and its relays), so the website finds the DVM as dvm@<domain>.

    \b
    Example:
        sigit-dvm nip05 > /var/www/sigit.example/.well-known/nostr.json
    """
    settings = inv.settings()
    key = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings))
    relays = load_relays(settings.path(settings.relays.relays_file))
    print(orjson.dumps(nip05_document(key.pubkey_hex, relays), option=orjson.OPT_INDENT_2).decode())


@cli.command("check-config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--connect", is_flag=True, help="Also connect: SMTP (EHLO, TLS, AUTH; no mail) and each relay.")
@global_options
@pass_invocation
def check_config(inv: Invocation, as_json: bool, connect: bool) -> int:
    """Validate every setting, the secrets, relays and templates; print every problem at once.

    Exit 0 when the configuration is usable (warnings may be printed), 2 on any error.

    \b
    Example:
        sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml check-config --connect
    """
    before = [Problem("--credentials-dir", inv.credentials_error)] if inv.credentials_error else []
    return checks.run(inv.config_path(), connect=connect, as_json=as_json, before=before)


@cli.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@pass_invocation
def migrate(inv: Invocation, as_json: bool) -> None:
    """Create the database's schema, or bring it to this version's; print the version.

    The daemon does the same when it starts; run this first to upgrade ahead of a deploy (and
    on PostgreSQL, before starting several daemons of a new version). A database newer than this
    sigit-dvm is refused, here and by the daemon.

    \b
    Example:
        sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml migrate
    """
    settings = inv.site_settings()
    store = settings.store
    path = settings.path(store.path)
    password = optional_secret("store_password", store.password_file, settings) if store.url else ""
    before = backends.version_of(store.url, path, password)
    conn = backends.connect_any(store.url, path, password)
    conn.close()
    where = store.redacted_url() if store.url else str(path)
    data = {"database": where, "from_version": before, "version": database.SCHEMA_VERSION}
    text = (
        f"{where}: schema {database.SCHEMA_VERSION} (was {before or 'empty'})"
        if before != database.SCHEMA_VERSION
        else f"{where}: schema {database.SCHEMA_VERSION}, already current"
    )
    _print(as_json, data, text)


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(probe_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every error is one line on stderr and an exit code, never a traceback."""
    try:
        try:
            result = cli.main(
                args=list(argv) if argv is not None else None, prog_name="sigit-dvm", standalone_mode=False
            )
            sys.stdout.flush()
        except click.exceptions.NoArgsIsHelpError as exc:  # a group without a subcommand: its help
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            return EXIT_USAGE
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"sigit-dvm: {exc.format_message()}{hint}", err=True)
            return EXIT_USAGE
        except click.ClickException as exc:
            click.echo(f"sigit-dvm: {exc.format_message()}", err=True)
            return exc.exit_code
        except click.Abort:
            return EXIT_FAILURE
        except DVMError as exc:
            click.echo(f"sigit-dvm: {exc}", err=True)
            return EXIT_USAGE if isinstance(exc, ConfigError | InvalidValue) else EXIT_FAILURE
        except DATABASE_ERRORS as exc:
            click.echo(f"sigit-dvm: database: {exc}", err=True)
            return EXIT_FAILURE
        except BrokenPipeError:
            raise
        except OSError as exc:  # a missing directory, permissions
            click.echo(f"sigit-dvm: {operator_error(exc)}", err=True)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing more, and keep the interpreter's final
        # flush from failing again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

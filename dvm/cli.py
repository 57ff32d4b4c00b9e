"""The ``sigit-dvm`` command: run the daemon and look after it.

Exit codes scripts can rely on: 0 success, 1 failure at run time, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dvm import __version__, logformat
from dvm.config import Settings, load_relays, load_settings, read_secret
from dvm.daemon import Daemon, Secrets
from dvm.errors import ConfigError, DVMError
from dvm.keyfile import parse_secret, write_new_key
from dvm.mailer.templates import TemplateContext, Templates
from dvm.nostr import bech32

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "sigit-dvm.toml"


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or os.environ.get("SIGIT_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_settings(path)


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(text)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logformat.setup(
        args.log_format or settings.daemon.log_format, args.log_level or settings.daemon.log_level
    )
    daemon = Daemon(settings, Secrets.load(settings))
    asyncio.run(daemon.run())
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    key = write_new_key(Path(args.path))
    _print(
        args,
        {"path": args.path, "pubkey": key.pubkey_hex, "npub": bech32.npub(key.pubkey)},
        f"wrote {args.path} (mode 0600)\npubkey {key.pubkey_hex}\nnpub   {bech32.npub(key.pubkey)}",
    )
    return EXIT_OK


def cmd_pubkey(args: argparse.Namespace) -> int:

    settings = _settings(args)
    key = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings))
    npub = bech32.npub(key.pubkey)
    _print(args, {"pubkey": key.pubkey_hex, "npub": npub}, f"{key.pubkey_hex}\n{npub}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:

    settings = _settings(args)
    secrets = Secrets.load(settings)
    relays = load_relays(settings.path(settings.relays.relays_file))
    Templates(
        TemplateContext(settings.mail.link_template, settings.mail.support_url), settings.mail.templates_dir
    )
    data = {
        "pubkey": secrets.key.pubkey_hex,
        "database": str(settings.path(settings.store.path)),
        "relays": list(relays),
        "mail_backend": settings.mail.backend,
        "request_kind": settings.service.request_kind,
    }
    lines = [f"{key}: {value}" for key, value in data.items()]
    _print(args, data, "configuration OK\n" + "\n".join(lines))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigit-dvm", description="SIGit's email signup DVM for Nostr.")
    parser.add_argument("--version", action="version", version=f"sigit-dvm {__version__}")
    parser.add_argument(
        "-c", "--config", help=f"settings file (default: $SIGIT_CONFIG or ./{DEFAULT_CONFIG})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (systemd Type=notify aware)")
    run.add_argument("--log-format", choices=["text", "json"], help="override daemon.log_format")
    run.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override daemon.log_level"
    )
    run.set_defaults(func=cmd_run)

    keygen = sub.add_parser("keygen", help="create a new DVM key in a 0600 file and print its npub")
    keygen.add_argument("path", help="where to write the key (refuses to overwrite)")
    keygen.add_argument("--json", action="store_true", help="machine-readable output")
    keygen.set_defaults(func=cmd_keygen)

    pubkey = sub.add_parser("pubkey", help="print the DVM's public key (hex and npub)")
    pubkey.add_argument("--json", action="store_true", help="machine-readable output")
    pubkey.set_defaults(func=cmd_pubkey)

    check = sub.add_parser("check-config", help="validate settings, secrets, relays and templates")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DVMError as exc:
        print(f"sigit-dvm: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

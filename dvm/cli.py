"""The ``sigit-dvm`` command: run the daemon and look after it.

Operators' subcommands read and change the live database (WAL, short transactions) while the
daemon runs: human tables by default, ``--json`` for scripts. Destructive actions need ``--yes``;
every change is written to the audit log with who and when.

Exit codes scripts can rely on: 0 success, 1 failure (not found, wrong state, run-time error),
2 bad usage or configuration (including a destructive action without ``--yes``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dvm import __version__, checks, logformat
from dvm.accounts.machine import Context
from dvm.admin import actions, queries, render
from dvm.config import Settings, load_settings, operator_error, read_secret, use_credentials_dir
from dvm.daemon import Daemon, Secrets
from dvm.errors import ConfigError, DVMError
from dvm.keyfile import parse_secret, write_new_key
from dvm.nostr import bech32
from dvm.store import database

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
    checks.preflight(settings)  # issue 15: relays, templates, store directory: refuse now, not later
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
    # issue 15: all logic in dvm.checks (every problem at once, exit 2 on any error, --connect)
    path = args.config or os.environ.get("SIGIT_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return checks.run(path, connect=args.connect, as_json=args.json)


# --- operators' commands ---------------------------------------------------------------------


def _db(args: argparse.Namespace) -> sqlite3.Connection:
    settings = _settings(args)
    path = settings.path(settings.store.path)
    if not path.exists():
        raise actions.AdminError(f"no database at {path}")
    return database.connect(path)


def _context(args: argparse.Namespace, *, needs_code_secret: bool) -> Context:
    settings = _settings(args)
    secret = b""
    if needs_code_secret:
        secret = read_secret("code_secret", settings.daemon.code_secret_file, settings).encode()
    return Context(int(time.time()), secrets.token_bytes, settings.service.rules().accounts, secret)


def _confirm(args: argparse.Namespace, what: str) -> None:
    if not args.yes:
        raise ConfigError(f"refusing to {what} without --yes")


def _show(args: argparse.Namespace, data: object, text: str) -> int:
    print(render.as_json(data) if args.json else text)
    return EXIT_OK


def cmd_sessions(args: argparse.Namespace) -> int:
    conn, now = _db(args), int(time.time())
    action = args.action or "list"
    if action == "list":
        rows = queries.sessions(
            conn, now, state=args.state, email=args.email, older_than_s=args.older_than, limit=args.limit
        )
        view = [
            {
                "pubkey": r["pubkey"][:16],
                "email": r["email"],
                "purpose": r["purpose"],
                "state": r["state"],
                "attempts": r["attempts"],
                "expires_in_s": r["code_expires_in_s"],
                "created": render.when(r["created_at"]),
            }
            for r in rows
        ]
        return _show(args, rows, render.table(view))
    if action == "show":
        found = queries.session(conn, args.pubkey, now)
        if found is None:
            raise actions.AdminError(f"no session {args.pubkey}")
        return _show(args, found, render.record(found))
    if action == "purge":
        _confirm(args, "purge sessions")
        count = actions.purge_sessions(conn, now, args.older_than or 86400, args.actor)
        return _show(args, {"purged": count}, f"purged {count} session(s)")
    ctx = _context(args, needs_code_secret=True)
    if action == "resend-code":
        actions.resend_code(conn, args.pubkey, ctx, args.actor)
        return _show(args, {"resent": args.pubkey}, f"new code queued for session {args.pubkey[:16]}")
    actions.unlock_session(conn, args.pubkey, ctx, args.actor)
    return _show(args, {"unlocked": args.pubkey}, f"session {args.pubkey[:16]} unlocked; new code queued")


def cmd_users(args: argparse.Namespace) -> int:
    conn = _db(args)
    action = args.action or "list"
    if action == "list":
        rows = queries.users(conn, args.search, args.limit)
        view = [
            r | {"pubkey": (r["pubkey"] or "")[:16], "created_at": render.when(r["created_at"])} for r in rows
        ]
        return _show(args, rows, render.table(view))
    if action == "show":
        found = queries.find_user(conn, args.user)
        if found is None:
            raise actions.AdminError(f"no user {args.user!r}")
        return _show(args, found, render.record(found))
    ctx = _context(args, needs_code_secret=False)
    if action == "change-email":
        _confirm(args, "change a user's email")
        email = actions.change_email(conn, args.user, args.email, ctx, args.actor)
        return _show(args, {"email": email}, f"email changed to {email}; the old address was notified")
    _confirm(args, "delete a user")
    user_id = actions.delete_user(conn, args.user, ctx, args.actor, notify=not args.no_notify)
    return _show(args, {"deleted": user_id}, f"user {user_id} deleted")


def cmd_mail(args: argparse.Namespace) -> int:
    conn, now = _db(args), int(time.time())
    if args.action in ("queue", "dead", "sent"):
        rows = queries.mail(conn, "queued" if args.action == "queue" else args.action, args.limit)
        view = [
            r
            | {
                "created_at": render.when(r["created_at"]),
                "next_attempt_at": render.when(r["next_attempt_at"]),
            }
            for r in rows
        ]
        columns = ["id", "kind", "recipient", "attempts", "created_at", "next_attempt_at", "last_error"]
        return _show(args, rows, render.table(view, columns))
    if args.action == "retry":
        actions.retry_mail(conn, args.id, now, args.actor)
        return _show(args, {"requeued": args.id}, f"mail {args.id} queued again")
    _confirm(args, "purge mail")
    count = actions.purge_mail(conn, now, args.older_than, args.actor)
    return _show(args, {"purged": count}, f"purged {count} mail(s)")


def cmd_events(args: argparse.Namespace) -> int:
    rows = queries.events(_db(args), outcome=args.outcome, method=args.method, limit=args.limit)
    view = [
        r
        | {
            "event_id": r["event_id"][:16],
            "pubkey": r["pubkey"][:16],
            "processed_at": render.when(r["processed_at"]),
        }
        for r in rows
    ]
    return _show(
        args,
        rows,
        render.table(view, ["processed_at", "event_id", "pubkey", "method", "outcome", "published"]),
    )


def cmd_stats(args: argparse.Namespace) -> int:
    data = queries.stats(_db(args), int(time.time()), args.days)
    lines = [render.table(data["days"]), ""]
    lines.append("failures: " + (", ".join(f"{k} {v}" for k, v in data["failures"].items()) or "none"))
    mail = data["mail"]
    lines.append(
        f"mail: {mail['queued']} queued (oldest {mail['oldest_queued_age_s']} s), {mail['sent']} sent, "
        f"{mail['dead']} dead, {mail['retried']} retried"
    )
    lines.append(f"users: {data['users']} ({data['activated_users']} activated)")
    return _show(args, data, "\n".join(lines))


def cmd_audit(args: argparse.Namespace) -> int:
    rows = queries.audit(_db(args), args.limit)
    return _show(args, rows, render.table([r | {"at": render.when(r["at"])} for r in rows]))


def cmd_backup(args: argparse.Namespace) -> int:
    """SQLite's online backup API: a consistent copy while the daemon writes."""
    target = Path(args.path)
    if target.exists():
        raise ConfigError(f"{target} exists; refusing to overwrite")
    if not target.parent.is_dir():
        raise ConfigError(f"directory {target.parent} does not exist")
    source = _db(args)
    with sqlite3.connect(target) as dest:
        source.backup(dest)
    dest.close()
    size = target.stat().st_size
    return _show(args, {"path": str(target), "bytes": size}, f"backed up to {target} ({size} bytes)")


def _login_name() -> str:
    """The login name, or ``uid N`` for a user without one (systemd's DynamicUser= outside nss)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigit-dvm", description="SIGit's email signup DVM for Nostr.")
    parser.add_argument("--version", action="version", version=f"sigit-dvm {__version__}")
    parser.add_argument(
        "-c", "--config", help=f"settings file (default: $SIGIT_CONFIG or ./{DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--credentials-dir",
        metavar="DIR",
        help="read secrets (dvm_key, code_secret, smtp_password) from files in DIR "
        "(default: $CREDENTIALS_DIRECTORY, as systemd sets it)",
    )
    parser.add_argument(
        "--actor",
        default=os.environ.get("SUDO_USER") or _login_name(),
        help="who is acting, for the audit log (default: the login name)",
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
    check.add_argument(
        "--connect", action="store_true", help="also connect: SMTP (EHLO, TLS, AUTH; no mail) and each relay"
    )
    check.set_defaults(func=cmd_check_config)
    _admin_parsers(sub)
    return parser


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _admin_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = sub.add_parser(
        "sessions", help="list, show, resend, unlock or purge sessions (never shows codes)"
    )
    sessions.set_defaults(func=cmd_sessions, action=None, state=None, email=None, older_than=None, limit=100)
    _json(sessions)
    ss = sessions.add_subparsers(dest="action", metavar="ACTION")
    lst = ss.add_parser("list", help="sessions, newest first (the default)")
    lst.add_argument("--state", choices=["pending", "verified", "consumed", "locked"])
    lst.add_argument("--email", help="part of the address")
    lst.add_argument("--older-than", type=int, metavar="SECONDS", help="created at least this long ago")
    lst.add_argument("--limit", type=int, default=100)
    _json(lst)
    for name, text in (
        ("show", "one session: attempts, expiry, lock"),
        ("resend-code", "mail a new code for a pending session"),
        ("unlock", "unlock a locked session and mail a new code"),
    ):
        p = ss.add_parser(name, help=text)
        p.add_argument("pubkey", help="the session's (ephemeral) public key, hex")
        _json(p)
    purge = ss.add_parser("purge", help="delete sessions untouched for --older-than seconds (default a day)")
    purge.add_argument("--older-than", type=int, default=86400, metavar="SECONDS")
    purge.add_argument("--yes", action="store_true", help="really delete")
    _json(purge)

    users = sub.add_parser("users", help="list, search, show, change the email of, or delete users")
    users.set_defaults(func=cmd_users, action=None, search=None, limit=100)
    _json(users)
    us = users.add_subparsers(dest="action", metavar="ACTION")
    lst = us.add_parser("list", help="users, newest first (the default)")
    lst.add_argument("--search", help="part of an email, or a pubkey")
    lst.add_argument("--limit", type=int, default=100)
    _json(lst)
    show = us.add_parser("show", help="one user by id, email or pubkey")
    show.add_argument("user")
    _json(show)
    change = us.add_parser("change-email", help="move a user to a new address (checked out of band)")
    change.add_argument("user")
    change.add_argument("email")
    change.add_argument("--yes", action="store_true", help="really change it")
    _json(change)
    delete = us.add_parser("delete", help="erase a user and everything tied to it (GDPR)")
    delete.add_argument("user")
    delete.add_argument("--no-notify", action="store_true", help="do not email the owner")
    delete.add_argument("--yes", action="store_true", help="really delete")
    _json(delete)

    mail = sub.add_parser("mail", help="the mail outbox: queue, dead letters, retry, purge")
    mail.set_defaults(func=cmd_mail)
    ms = mail.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("queue", "mail waiting to be sent"),
        ("dead", "dead letters, with reasons"),
        ("sent", "sent"),
    ):
        p = ms.add_parser(name, help=text)
        p.add_argument("--limit", type=int, default=100)
        _json(p)
    retry = ms.add_parser("retry", help="queue a dead letter again")
    retry.add_argument("id", type=int)
    _json(retry)
    purge = ms.add_parser("purge", help="delete sent and dead mail older than --older-than seconds")
    purge.add_argument("--older-than", type=int, default=30 * 86400, metavar="SECONDS")
    purge.add_argument("--yes", action="store_true", help="really delete")
    _json(purge)

    events = sub.add_parser("events", help="processed requests with their outcome, newest first")
    events.add_argument("--outcome", help="ok or an error code")
    events.add_argument("--method")
    events.add_argument("--limit", type=int, default=50)
    _json(events)
    events.set_defaults(func=cmd_events)

    stats = sub.add_parser(
        "stats", help="signups, verifications, activations, logins per day; failures; mail"
    )
    stats.add_argument("--days", type=int, default=7)
    _json(stats)
    stats.set_defaults(func=cmd_stats)

    audit = sub.add_parser("audit", help="the admin audit log: who did what, when")
    audit.add_argument("--limit", type=int, default=100)
    _json(audit)
    audit.set_defaults(func=cmd_audit)

    backup = sub.add_parser("backup", help="copy the live database with SQLite's online backup API")
    backup.add_argument("path", help="the new file (refuses to overwrite)")
    _json(backup)
    backup.set_defaults(func=cmd_backup)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.credentials_dir:
            use_credentials_dir(args.credentials_dir)
        return int(args.func(args))
    except DVMError as exc:
        print(f"sigit-dvm: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:  # output piped to head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (OSError, sqlite3.Error) as exc:  # a missing directory, permissions, a damaged database
        print(f"sigit-dvm: {operator_error(exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

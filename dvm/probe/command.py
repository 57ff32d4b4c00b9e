"""``sigit-dvm probe``: the command line around :func:`dvm.probe.run.probe`.

It gathers what the settings and the options say (which DVM, which address, which relays, the
mailbox, whether the database is readable here), runs the probe, and prints the report; the exit
code is 0 when every step passed, 1 when one failed, 2 for a usage or settings error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click
import orjson

from dvm.config import Settings, load_relays, optional_secret, read_secret
from dvm.errors import AdminError, ConfigError, InvalidEmail, InvalidValue
from dvm.invocation import EXIT_FAILURE, EXIT_OK, Invocation, global_options, pass_invocation
from dvm.keyfile import parse_secret
from dvm.probe.mailbox import Mailbox, open_mailbox
from dvm.probe.report import write_metrics
from dvm.probe.run import MailRow, ProbeOptions, probe
from dvm.probe.target import parse_name
from dvm.protocol.email_address import normalise_email
from dvm.store.database import DATABASE_ERRORS


@click.command("probe")
@click.option("--dvm", "dvm_name", metavar="NAME", help="The DVM: npub, hex key or NIP-05 name (probe.dvm).")
@click.option("--email", metavar="ADDRESS", help="The address to sign up: yours (probe.email).")
@click.option(
    "--relay", "relays", multiple=True, metavar="URL", help="A relay to use (repeat); else its own."
)
@click.option(
    "--mailbox", metavar="SPEC", help="Where the code arrives: a directory or imap[s]://user@host/folder."
)
@click.option("--no-mailbox", is_flag=True, help="Do not read any mailbox (stop after the mail row).")
@click.option("--no-database", is_flag=True, help="Do not read the outbox even where the database is.")
@click.option("--no-verify", is_flag=True, help="Read the code but do not send verify_code.")
@click.option("--keep-mail", is_flag=True, help="Leave the code mail the probe read in the mailbox.")
@click.option(
    "--timeout", "timeout_s", type=click.FloatRange(1, 3600), help="Give up after this (probe.timeout_s)."
)
@click.option("--metrics-file", type=click.Path(dir_okay=False), help="Also write Prometheus metrics here.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@pass_invocation
def probe_command(
    inv: Invocation,
    dvm_name: str | None,
    email: str | None,
    relays: tuple[str, ...],
    mailbox: str | None,
    no_mailbox: bool,
    no_database: bool,
    no_verify: bool,
    keep_mail: bool,
    timeout_s: float | None,
    metrics_file: str | None,
    as_json: bool,
) -> int:
    """Check the installed daemon end to end: sign up the probe's address through its relays.

    Finds the DVM and its announcement, publishes a request_account mined to the announced PoW
    from a fresh key, and waits for the reply; where it can, it also follows the mail row (the
    database) and the code into the probe's mailbox, and verifies it. It never activates: the
    probe's address stays one pending signup. Each step is printed with its time; exit 0 when
    all passed, 1 when one failed (for cron, systemd timers and monitoring), 2 for bad usage.

    \b
    Example:
        sigit-dvm --config /etc/sigit-dvm/sigit-dvm.toml probe --email probe@sigit.example.org
    """
    settings = inv.settings()
    site = inv.config_path() is not None
    options = replace(
        _options(inv, settings, site, dvm_name, email, relays, mailbox, no_mailbox, no_database),
        timeout_s=timeout_s or settings.probe.timeout_s,
        verify=not no_verify,
        keep_mail=keep_mail,
    )
    report = asyncio.run(probe(options))
    if metrics_file:
        write_metrics(Path(metrics_file), report.metrics())
    if as_json:
        print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(report.text())
    return EXIT_OK if report.ok else EXIT_FAILURE


def _options(
    inv: Invocation,
    settings: Settings,
    site: bool,
    dvm_name: str | None,
    email: str | None,
    relays: tuple[str, ...],
    mailbox: str | None,
    no_mailbox: bool,
    no_database: bool,
) -> ProbeOptions:
    """What the probe needs, from the options first and the settings next; ConfigError (exit 2)
    when something it cannot do without is missing."""
    address = email or settings.probe.email
    if not address:
        raise ConfigError("no address to probe with: give --email ADDRESS or set probe.email")
    try:
        address = normalise_email(address)
    except InvalidEmail as exc:
        raise InvalidValue(f"--email: {exc}") from exc
    name = dvm_name or settings.probe.dvm
    named = parse_name(name) if name else None
    key_pubkey = ""
    if named is None:
        try:  # next to the service, root's CLI reads the key (the pubkey is all the probe takes)
            key_pubkey = parse_secret(read_secret("dvm_key", settings.daemon.key_file, settings)).pubkey_hex
        except ConfigError:
            key_pubkey = ""
        if not key_pubkey and not settings.daemon.nip05_domain:
            raise ConfigError(
                "no DVM to probe: give --dvm (an npub or dvm@domain), set probe.dvm or "
                "daemon.nip05_domain, or let the probe read the DVM key (--credentials-dir)"
            )
    for url in relays:
        if not url.startswith(("ws://", "wss://")):
            raise InvalidValue(f"--relay: {url!r} is not a ws:// or wss:// URL")
    own_relays: tuple[str, ...] = ()
    if site and not relays and settings.path(settings.relays.relays_file).exists():
        own_relays = load_relays(settings.path(settings.relays.relays_file))
    if not relays and not own_relays and not (named and named.nip05) and not settings.daemon.nip05_domain:
        raise ConfigError("no relays: give --relay URL, or --config with a relays file, or a NIP-05 name")
    outbox, why = (None, "--no-database") if no_database or not site else _outbox(inv)
    return ProbeOptions(
        email=address,
        named=named,
        key_pubkey=key_pubkey,
        nip05_domain=settings.daemon.nip05_domain,
        relays=tuple(relays) or own_relays,
        relays_given=bool(relays),
        timeout_s=settings.probe.timeout_s,
        mailbox=None if no_mailbox else _mailbox(settings, site, mailbox),
        outbox=outbox,
        outbox_note=why if site else "no settings file (--config): the database is not known here",
        code_ttl_s=settings.service.code_ttl_s,
        private_mode=settings.service.private_mode if site else None,
    )


def _mailbox(settings: Settings, site: bool, spec: str | None) -> Mailbox | None:
    """``--mailbox``, else ``probe.mailbox``, else the file backend's directory (its mail is there)."""
    spec = spec or settings.probe.mailbox
    if not spec and site and settings.mail.backend == "file":
        spec = str(settings.path(settings.mail.outbox_dir))
    if not spec:
        return None
    password = None
    if spec.startswith(("imap://", "imaps://")):
        password = optional_secret("probe_mailbox_password", settings.probe.mailbox_password_file, settings)
    return open_mailbox(spec, settings.base_dir, password)


def _outbox(inv: Invocation) -> tuple[Callable[[str], MailRow | None] | None, str]:
    """A reader of the mail row a request queued, or None and why when the database is not
    readable here (another machine, no permission, another schema): that step is then skipped."""
    unreadable: tuple[type[Exception], ...] = (AdminError, ConfigError, OSError, *DATABASE_ERRORS)
    try:
        conn = inv.db()
    except unreadable as exc:
        return None, f"the database is not readable here: {exc}"

    def row(request_id: str) -> MailRow | None:
        try:
            found = conn.execute(
                "SELECT id, kind, status, created_at, sent_at, attempts, last_error, message_id "
                "FROM mail WHERE request_id = ? ORDER BY id LIMIT 1",
                (request_id,),
            ).fetchone()
        except DATABASE_ERRORS:
            return None
        if found is None:
            return None
        return MailRow(
            int(found[0]), found[1], found[2], int(found[3]), found[4], int(found[5]), found[6], found[7]
        )

    return row, ""

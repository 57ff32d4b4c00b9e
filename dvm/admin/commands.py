"""The admins' commands: ``sessions``, ``users``, ``blocks``, ``mail``, ``events``, ``stats``,
``audit`` and ``backup``, on the live database (WAL, one short transaction per command).

Each command is one function with its options right above it and an example in its docstring.
Listings print a table (``--json``, ``--csv``, ``--nl`` for scripts); destructive actions need
``--yes``; every change is one transaction with its audit row. Codes, entropy and backups are
never printed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import click

from dvm.accounts.decision import MailKind
from dvm.admin import actions, lookup, queries, render
from dvm.admin.render import Message, Output, Record, Rows
from dvm.errors import AdminError, ConfigError, InvalidEmail, InvalidValue, error_codes
from dvm.invocation import (
    DURATION,
    Group,
    Invocation,
    confirm,
    global_options,
    group_output_options,
    output_options,
    pass_invocation,
    yes_option,
)
from dvm.mailer.kinds import SAMPLE_AT, SPECS
from dvm.mailer.templates import TemplateContext, Templates, fallbacks, is_language_tag
from dvm.protocol.email_address import normalise_email
from dvm.protocol.methods import Method

DAY_S = 86400
COUNT = click.IntRange(min=1)
"""A count or an id: 1 or more (``stats --days -3`` is refused, not read as a future)."""

# --- sessions --------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def sessions() -> None:
    """Signup, login and upkeep sessions: list, show, resend a code, unlock, purge.

    \b
    Example:
        sigit-dvm sessions list --state locked
    """


@sessions.command("list")
@click.option("--state", type=click.Choice(["pending", "verified", "consumed", "locked"]))
@click.option("--email", metavar="PART", help="Part of the address.")
@click.option("--older-than", type=DURATION, metavar="DURATION", help="Created at least this long ago.")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def sessions_list(
    inv: Invocation, state: str | None, email: str | None, older_than: int | None, limit: int
) -> Output:
    """Sessions, newest first (never their codes).

    \b
    Example:
        sigit-dvm sessions list --state pending --older-than 1h
    """
    rows = queries.sessions(inv.db(), inv.now, state=state, email=email, older_than_s=older_than, limit=limit)
    columns = ["pubkey", "email", "purpose", "state", "attempts", "code_expires_in_s", "created_at"]
    return Rows(rows, columns)


@sessions.command("show")
@click.argument("pubkey")
@output_options
@global_options
@pass_invocation
def sessions_show(inv: Invocation, pubkey: str) -> Output:
    """One session by its key (8 or more leading characters will do): attempts, expiry, lock.

    \b
    Example:
        sigit-dvm sessions show 3bf0c63fcb934634
    """
    conn = inv.db()
    found = queries.session(conn, lookup.session(conn, pubkey), inv.now)
    assert found is not None
    return Record(found)


@sessions.command("resend-code")
@click.argument("pubkey")
@output_options
@global_options
@pass_invocation
def sessions_resend_code(inv: Invocation, pubkey: str) -> Output:
    """Mail a new code for a pending session (no cooldown; the old code stops working).

    \b
    Example:
        sigit-dvm sessions resend-code 3bf0c63fcb934634
    """
    key = lookup.session(inv.db(), pubkey)  # a bad prefix is refused before any secret is read
    key = actions.resend_code(inv.db(), key, inv.context(mails=True), inv.who())
    return Message({"resent": key}, f"new code queued for session {key[:16]}")


@sessions.command("unlock")
@click.argument("pubkey")
@output_options
@global_options
@pass_invocation
def sessions_unlock(inv: Invocation, pubkey: str) -> Output:
    """Unlock a locked session: attempts reset, a new code mailed.

    \b
    Example:
        sigit-dvm sessions unlock 3bf0c63fcb934634
    """
    key = lookup.session(inv.db(), pubkey)  # a bad prefix is refused before any secret is read
    key = actions.unlock_session(inv.db(), key, inv.context(mails=True), inv.who())
    return Message({"unlocked": key}, f"session {key[:16]} unlocked; new code queued")


@sessions.command("purge")
@click.option("--older-than", type=DURATION, default=DAY_S, show_default=True, metavar="DURATION")
@yes_option
@output_options
@global_options
@pass_invocation
def sessions_purge(inv: Invocation, older_than: int, yes: bool) -> Output:
    """Delete sessions untouched for --older-than (seconds, or 90m, 12h, 30d).

    \b
    Example:
        sigit-dvm sessions purge --older-than 7d --yes
    """
    confirm(yes, "purge sessions")
    count = actions.purge_sessions(inv.db(), inv.now, older_than, inv.who())
    return Message({"purged": count}, f"purged {count} session(s)")


# --- users -----------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def users() -> None:
    """Accounts: list, show, export, change the address, suspend, restore a backup, delete (GDPR).

    A USER is an address, or an id or account pubkey (8 or more leading characters will do).

    \b
    Example:
        sigit-dvm users show ana@example.org
    """


@users.command("list")
@click.option("--search", metavar="PART", help="Part of an address, or the start of an id or pubkey.")
@click.option("--suspended", is_flag=True, help="Only suspended accounts.")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def users_list(inv: Invocation, search: str | None, suspended: bool, limit: int) -> Output:
    """Users, newest first.

    \b
    Example:
        sigit-dvm users list --search example.org
    """
    rows = queries.users(inv.db(), search, limit, suspended=suspended)
    return Rows(rows, ["id", "email", "verified", "activated", "suspended", "pubkey", "created_at"])


@users.command("show")
@click.argument("user")
@output_options
@global_options
@pass_invocation
def users_show(inv: Invocation, user: str) -> Output:
    """One user: state, pending change, backup sizes, suspension, last login and last seen.

    \b
    Example:
        sigit-dvm users show ana@example.org
    """
    conn = inv.db()
    return Record(queries.user(conn, lookup.user(conn, user).id))


@users.command("export")
@click.argument("user")
@global_options
@pass_invocation
def users_export(inv: Invocation, user: str) -> None:
    """Everything stored about one person, as JSON (a GDPR access request).

    Entropy, key backups and code HMACs are withheld: the person gets their backup by logging in.

    \b
    Example:
        sigit-dvm users export ana@example.org > ana.json
    """
    conn = inv.db()
    click.echo(render.as_json(render.machine(queries.export(conn, lookup.user(conn, user).id))))


@users.command("erased")
@click.argument("email")
@output_options
@global_options
@pass_invocation
def users_erased(inv: Invocation, email: str) -> Output:
    """Was a user with this address erased? (Only a salted hash of it is kept.)

    \b
    Example:
        sigit-dvm users erased bo@example.org
    """
    try:
        address = normalise_email(email)
    except InvalidEmail as exc:
        raise InvalidValue(f"{email!r} is not a valid address: {exc.message}") from exc
    found = queries.erased(inv.db(), address)
    text = f"{address}: no erased user had this address"
    if found["erased"]:
        text = f"{address}: erased {render.iso(found['erased_at'])} by {found['erased_by']}"
    return Message(found, text)


@users.command("change-email")
@click.argument("user")
@click.argument("email")
@yes_option
@output_options
@global_options
@pass_invocation
def users_change_email(inv: Invocation, user: str, email: str, yes: bool) -> Output:
    """Move a user to an address you checked out of band; the old address is told.

    The same rules as the user's own change: the address must not be another account's, nor
    reserved by another account's unconfirmed change, nor blocked.

    \b
    Example:
        sigit-dvm users change-email ana@example.org ana@example.net --yes
    """
    confirm(yes, "change a user's email")
    new = actions.change_email(inv.db(), user, email, inv.context(mails=True), inv.who())
    return Message({"email": new}, f"email changed to {new}; the old address was notified")


@users.command("suspend")
@click.argument("user")
@output_options
@global_options
@pass_invocation
def users_suspend(inv: Invocation, user: str) -> Output:
    """Refuse every request of the account (account_suspended, no mail) until unsuspended.

    \b
    Example:
        sigit-dvm users suspend ana@example.org
    """
    found = actions.suspend_user(inv.db(), user, inv.context(mails=False), inv.who())
    return Message({"suspended": found.id}, f"user {found.id} ({found.email}) suspended")


@users.command("unsuspend")
@click.argument("user")
@output_options
@global_options
@pass_invocation
def users_unsuspend(inv: Invocation, user: str) -> Output:
    """Lift a suspension.

    \b
    Example:
        sigit-dvm users unsuspend ana@example.org
    """
    found = actions.unsuspend_user(inv.db(), user, inv.context(mails=False), inv.who())
    return Message({"unsuspended": found.id}, f"user {found.id} ({found.email}) unsuspended")


@users.command("restore-backup")
@click.argument("user")
@yes_option
@output_options
@global_options
@pass_invocation
def users_restore_backup(inv: Invocation, user: str, yes: bool) -> Output:
    """Put back the key backup the user's last update replaced (the two swap); the owner is told.

    \b
    Example:
        sigit-dvm users restore-backup ana@example.org --yes
    """
    confirm(yes, "restore a user's previous backup")
    found = actions.restore_backup(inv.db(), user, inv.context(mails=True), inv.who())
    return Message({"restored": found.id}, f"user {found.id}: previous backup restored; the owner was told")


@users.command("delete")
@click.argument("user")
@click.option("--no-notify", is_flag=True, help="Do not email the owner.")
@yes_option
@output_options
@global_options
@pass_invocation
def users_delete(inv: Invocation, user: str, no_notify: bool, yes: bool) -> Output:
    """Erase a user (GDPR): account, sessions, code records, mail, and its addresses in the audit
    log (a salted hash stays, for 'users erased'). A verified address gets a notice.

    \b
    Example:
        sigit-dvm users delete bo@example.org --yes
    """
    confirm(yes, "delete a user")
    ctx = inv.context(mails=not no_notify)
    done = actions.delete_user(inv.db(), user, ctx, inv.who(), notify=not no_notify)
    text = f"user {done.user_id} deleted" + ("; the owner was notified" if done.notified else "")
    if not done.checkpointed:
        text += (
            "\nwarning: a busy reader kept the WAL from being checkpointed: older copies of the erased"
            " rows stay in the -wal file until SQLite's next checkpoint"
        )
    data = {"deleted": done.user_id, "notified": done.notified, "checkpointed": done.checkpointed}
    return Message(data, text)


# --- blocks ----------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def blocks() -> None:
    """Addresses and domains refused at signup, login and email change (email_blocked).

    \b
    Example:
        sigit-dvm blocks add spam.example --reason "throwaway domain"
    """


@blocks.command("list")
@output_options
@global_options
@pass_invocation
def blocks_list(inv: Invocation) -> Output:
    """Every block, newest first.

    \b
    Example:
        sigit-dvm blocks list --csv
    """
    return Rows(queries.blocks(inv.db()), ["value", "kind", "reason", "created_at", "actor"])


@blocks.command("add")
@click.argument("target")
@click.option("--reason", default="", help="Why (kept with the block and in the audit log).")
@output_options
@global_options
@pass_invocation
def blocks_add(inv: Invocation, target: str, reason: str) -> Output:
    """Block an address, or a domain and its subdomains.

    \b
    Example:
        sigit-dvm blocks add mallory@example.com
        sigit-dvm blocks add spam.example --reason "throwaway domain"
    """
    value, kind = actions.add_block(inv.db(), target, reason, inv.now, inv.who())
    return Message({"blocked": value, "kind": kind}, f"{kind} {value} blocked")


@blocks.command("remove")
@click.argument("target")
@output_options
@global_options
@pass_invocation
def blocks_remove(inv: Invocation, target: str) -> Output:
    """Lift a block.

    \b
    Example:
        sigit-dvm blocks remove spam.example
    """
    value = actions.remove_block(inv.db(), target, inv.now, inv.who())
    return Message({"unblocked": value}, f"{value} unblocked")


# --- mail ------------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def mail() -> None:
    """The mail outbox: queue, dead letters, sent mail, retry, purge; preview a template.

    \b
    Example:
        sigit-dvm mail dead
    """


def _mail_list(inv: Invocation, status: str, limit: int) -> Output:
    rows = queries.mail(inv.db(), status, limit)
    when = queries.MAIL_TIME_COLUMN.get(status)
    return Rows(
        rows, ["id", "kind", "recipient", "attempts", "created_at", *([when] if when else []), "last_error"]
    )


@mail.command("queue")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def mail_queue(inv: Invocation, limit: int) -> Output:
    """Mail waiting to be sent, with its next attempt.

    \b
    Example:
        sigit-dvm mail queue
    """
    return _mail_list(inv, "queued", limit)


@mail.command("dead")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def mail_dead(inv: Invocation, limit: int) -> Output:
    """Dead letters, with the server's reason.

    \b
    Example:
        sigit-dvm mail dead --json
    """
    return _mail_list(inv, "dead", limit)


@mail.command("sent")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def mail_sent(inv: Invocation, limit: int) -> Output:
    """Sent mail, with when the server accepted it.

    \b
    Example:
        sigit-dvm mail sent --limit 20
    """
    return _mail_list(inv, "sent", limit)


@mail.command("retry")
@click.argument("mail_id", metavar="ID", type=COUNT)
@output_options
@global_options
@pass_invocation
def mail_retry(inv: Invocation, mail_id: int) -> Output:
    """Queue a dead letter again (not code emails: resend a code instead).

    \b
    Example:
        sigit-dvm mail retry 42
    """
    resealed = actions.retry_mail(inv.db(), mail_id, inv.now, inv.who(), inv.mail_seal())
    note = " (its values sealed again with the code secret)" if resealed else ""
    return Message({"requeued": mail_id, "resealed": resealed}, f"mail {mail_id} queued again{note}")


@mail.command("purge")
@click.option("--older-than", type=DURATION, default=30 * DAY_S, show_default=True, metavar="DURATION")
@yes_option
@output_options
@global_options
@pass_invocation
def mail_purge(inv: Invocation, older_than: int, yes: bool) -> Output:
    """Delete sent and dead mail older than --older-than (queued mail is never purged).

    \b
    Example:
        sigit-dvm mail purge --older-than 30d --yes
    """
    confirm(yes, "purge mail")
    count = actions.purge_mail(inv.db(), inv.now, older_than, inv.who())
    return Message({"purged": count}, f"purged {count} mail(s)")


class LanguageTag(click.ParamType[str, Any]):
    """A BCP 47 tag as the protocol takes it (``de``, ``pt-BR``)."""

    name = "tag"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not is_language_tag(text):
            self.fail(f"{value!r} is not a language tag (BCP 47, e.g. de, pt-BR)", param, ctx)
        return text


@mail.command("preview")
@click.argument("kind", type=click.Choice([k.value for k in MailKind]))
@click.option(
    "--lang", type=LanguageTag(), help="A language (BCP 47: de, pt-BR); else the default templates."
)
@click.option("--to", "recipient", default="user@example.org", show_default=True, metavar="ADDRESS")
@click.option("--html", "show_html", is_flag=True, help="Print the HTML part instead of the text.")
@output_options
@global_options
@pass_invocation
def mail_preview(inv: Invocation, kind: str, lang: str | None, recipient: str, show_html: bool) -> Output:
    """Render one kind of mail as it would go out, with sample values and this site's templates
    and settings (mail.templates_dir, link_template, support_url, code_in_subject); nothing is
    sent and no database is needed. docs/operations.md lists the kinds and their placeholders.

    \b
    Example:
        sigit-dvm mail preview signup_code --lang de
    """
    mail_settings = inv.settings().mail
    directory = inv.settings().path(mail_settings.templates_dir) if mail_settings.templates_dir else None
    context = TemplateContext(
        mail_settings.link_template, mail_settings.support_url, mail_settings.code_in_subject
    )
    templates = Templates(context, directory)
    spec = SPECS[MailKind(kind)]
    rendered = templates.render(spec.kind, recipient, dict(spec.sample), SAMPLE_AT, lang)
    used = next((c for c in fallbacks(lang) if c in ("", *templates.languages)), "")
    data = {
        "kind": kind,
        "lang": lang,
        "templates": used or "default",
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
    }
    text = (
        rendered.html.rstrip("\n")
        if show_html
        else f"Subject: {rendered.subject}\n\n{rendered.text.rstrip()}"
    )
    if lang and used != lang.lower():
        click.echo(f"sigit-dvm: no {lang} templates here: showing the {used or 'default'} ones", err=True)
    return Message(data, text)


# --- requests --------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def requests() -> None:
    """The record of answered requests (what replays are answered from). The daemon prunes it
    by itself (retention.*); this is for doing it now.

    \b
    Example:
        sigit-dvm requests purge --older-than 2d --yes
    """


@requests.command("purge")
@click.option("--older-than", type=DURATION, default=DAY_S, show_default=True, metavar="DURATION")
@yes_option
@output_options
@global_options
@pass_invocation
def requests_purge(inv: Invocation, older_than: int, yes: bool) -> Output:
    """Delete request records processed longer ago than --older-than (seconds, or 90m, 12h, 30d),
    except those that could still be replayed or whose reply is not out yet.

    \b
    Example:
        sigit-dvm requests purge --older-than 1d --yes
    """
    confirm(yes, "purge request records")
    settings = inv.settings()
    replay_s = settings.service.created_at_window_s + settings.relays.since_margin_s
    count = actions.purge_requests(
        inv.db(), inv.now, older_than, replay_s, settings.service.reply_ttl_s, inv.who()
    )
    return Message({"purged": count}, f"purged {count} request record(s)")


# --- events, stats ---------------------------------------------------------------------------


@click.command("events")
@click.option("--outcome", type=click.Choice(["ok", *sorted(error_codes())]), help="ok or an error code.")
@click.option("--method", type=click.Choice([m.value for m in Method]))
@click.option("--limit", type=COUNT, default=50, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def events(inv: Invocation, outcome: str | None, method: str | None, limit: int) -> Output:
    """Processed requests with their outcome, newest first.

    \b
    Example:
        sigit-dvm events --outcome too_many_attempts
    """
    rows = queries.events(inv.db(), outcome=outcome, method=method, limit=limit)
    return Rows(rows, ["processed_at", "event_id", "pubkey", "method", "outcome", "published"])


@click.command("stats")
@click.option("--days", type=COUNT, default=7, show_default=True, help="UTC days back from today.")
@output_options
@global_options
@pass_invocation
def stats(inv: Invocation, days: int) -> Output:
    """Per UTC day: signups, codes verified, activations, login requests, codes sent, requests
    blocked; failures; mail; users, suspended users and blocks.

    \b
    Example:
        sigit-dvm stats --days 30
    """
    data = queries.stats(inv.db(), inv.now, days)
    lines = [render.table(data["days"], inv.now), ""]
    lines.append("failures: " + (", ".join(f"{k} {v}" for k, v in data["failures"].items()) or "none"))
    m = data["mail"]
    lines.append(
        f"mail: {m['queued']} queued (oldest {m['oldest_queued_age_s']} s), {m['sent']} sent, "
        f"{m['dead']} dead, {m['retried']} retried"
    )
    lines.append(
        f"users: {data['users']} ({data['activated_users']} activated, {data['suspended_users']} suspended)"
    )
    b = data["blocks"]
    lines.append(f"blocks: {b['address']} address(es), {b['domain']} domain(s)")
    return Message(data, "\n".join(lines))


# --- audit -----------------------------------------------------------------------------------


@click.group(cls=Group)
@group_output_options
@global_options
def audit() -> None:
    """The admin audit log: who did what, when; purge old rows.

    \b
    Example:
        sigit-dvm audit list --action delete-user
    """


@audit.command("list")
@click.option("--action", help="Only this action (e.g. delete-user, block).")
@click.option("--by", "actor_filter", metavar="ACTOR", help="Only this actor.")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many rows.")
@output_options
@global_options
@pass_invocation
def audit_list(inv: Invocation, action: str | None, actor_filter: str | None, limit: int) -> Output:
    """Audit rows, newest first.

    \b
    Example:
        sigit-dvm audit list --by alice --limit 20
    """
    rows = queries.audit(inv.db(), limit, action=action, actor=actor_filter)
    return Rows(rows, ["id", "at", "actor", "action", "target", "detail"])


@audit.command("purge")
@click.option("--older-than", type=DURATION, required=True, metavar="DURATION", help="e.g. 365d.")
@yes_option
@output_options
@global_options
@pass_invocation
def audit_purge(inv: Invocation, older_than: int, yes: bool) -> Output:
    """Delete audit rows older than --older-than; the purge is audited itself.

    \b
    Example:
        sigit-dvm audit purge --older-than 365d --yes
    """
    confirm(yes, "purge the audit log")
    count = actions.purge_audit(inv.db(), inv.now, older_than, inv.who())
    return Message({"purged": count}, f"purged {count} audit row(s)")


# --- backup ----------------------------------------------------------------------------------


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@output_options
@global_options
@pass_invocation
def backup(inv: Invocation, path: Path) -> Output:
    """A consistent copy of the live database; refuses to overwrite. SQLite: its online backup
    API (the copy is a database file). PostgreSQL: pg_dump's custom format (restore it with
    pg_restore; docs/operations.md, "Backups").

    \b
    Example:
        sigit-dvm backup /backup/sigit-2026-12-01.sqlite3
    """
    if not path.parent.is_dir():
        raise ConfigError(f"directory {path.parent} does not exist")
    store = inv.settings().store
    source = inv.db()  # on PostgreSQL too: the schema is checked before anything is written
    try:  # created empty and 0600 first: SQLite takes an empty file as a new database
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; refusing to overwrite") from exc
    if store.url:
        try:
            dump(store.url, inv.store_password(), path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        size = path.stat().st_size
        return Message({"path": str(path), "bytes": size}, f"backed up to {path} ({size} bytes, pg_dump)")
    dest = sqlite3.connect(path)
    try:
        source.backup(dest)
    finally:
        dest.close()
    size = path.stat().st_size
    return Message({"path": str(path), "bytes": size}, f"backed up to {path} ({size} bytes)")


def dump(url: str, password: str, path: Path) -> None:
    """``pg_dump --format=custom`` of the database at ``url`` into ``path`` (which exists, 0600)."""
    found = shutil.which("pg_dump") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), reverse=True)), None
    )
    if found is None:
        raise AdminError("pg_dump not found: install PostgreSQL's client (Debian: postgresql-client)")
    env = dict(os.environ, PGPASSWORD=password) if password else None
    done = subprocess.run(  # noqa: S603 (our own argv: the configured URL is the operator's)
        [found, "--format=custom", "--no-owner", "--file", str(path), "--dbname", url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise AdminError(f"pg_dump failed: {lines[-1] if lines else f'exit {done.returncode}'}")


COMMANDS = (sessions, users, blocks, mail, requests, events, stats, audit, backup)

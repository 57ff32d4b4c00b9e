"""Where the probe reads its code: a directory of messages, or an IMAP account.

A directory is a Maildir (``new/`` and ``cur/``, as a local MTA or aiosmtpd's Mailbox handler
writes it) or a flat directory of ``.eml`` files (the ``file`` mail backend's ``outbox_dir``).
IMAP is ``imaps://user@host[:port][/folder]`` (TLS from the start) or ``imap://...`` (STARTTLS,
required unless the host is loopback, so the password never crosses a network in clear); the
password is the secret ``probe_mailbox_password``. Blocking calls: the probe runs them on a thread.

Only messages addressed to the probe's address are read, and only those the probe used are
deleted (``--keep-mail`` keeps them).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import imaplib
import re
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from dvm.errors import ConfigError
from dvm.mailer.backends import is_loopback

CODE_LINE = re.compile(r"^\s*(\d{6}|\d{12}|\d{4} \d{4} \d{4})\s*$", re.M)
CODE_PARAM = re.compile(r"[?&#]code=(\d{6}|\d{12})\b")
HTML_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class Found:
    """A message to the probe's address: its id in the mailbox, Message-ID, code, arrival."""

    id: str
    message_id: str
    code: str | None
    received: float  # Unix seconds (file time, or IMAP's INTERNALDATE)


class Mailbox(Protocol):
    where: str

    def messages(self, address: str) -> list[Found]: ...

    def delete(self, ids: list[str]) -> None: ...

    def close(self) -> None: ...


def code_of(message: EmailMessage) -> str | None:
    """The code a code email carries: on a line of its own in the text (six or twelve digits,
    maybe grouped by four), else in the link's ``code=`` parameter; None for other mail."""
    texts = []
    for part in message.walk() if message.is_multipart() else [message]:
        if part.get_content_maintype() == "text":
            try:
                content = part.get_content()
            except (LookupError, ValueError):
                continue
            texts.append(HTML_TAG.sub("\n", content) if part.get_content_subtype() == "html" else content)
    for text in texts:
        match = CODE_LINE.search(text)
        if match:
            return match.group(1).replace(" ", "")
    for text in texts:
        match = CODE_PARAM.search(text)
        if match:
            return match.group(1)
    return None


def addressed_to(message: EmailMessage, address: str) -> bool:
    recipients = getaddresses([str(v) for v in message.get_all("To", [])])
    return any(addr.strip().lower() == address.lower() for _, addr in recipients)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class DirectoryMailbox:
    """A Maildir or a directory of ``.eml`` files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def _files(self) -> list[Path]:
        files = [p for p in self.path.glob("*.eml") if p.is_file()]
        for sub in ("new", "cur"):
            if (self.path / sub).is_dir():
                files += [
                    p for p in (self.path / sub).iterdir() if p.is_file() and not p.name.startswith(".")
                ]
        return files

    def messages(self, address: str) -> list[Found]:
        if not self.path.is_dir():
            raise OSError(f"{self.path} is not a directory")
        found = []
        for path in self._files():
            try:
                data, received = path.read_bytes(), path.stat().st_mtime
            except OSError:  # delivered and moved (new/ -> cur/) meanwhile: seen next time
                continue
            message = parse(data)
            if addressed_to(message, address):
                found.append(Found(str(path), str(message.get("Message-ID", "")), code_of(message), received))
        return found

    def delete(self, ids: list[str]) -> None:
        for name in ids:
            Path(name).unlink(missing_ok=True)

    def close(self) -> None:
        return None


class ImapMailbox:
    """An IMAP folder, over TLS (``imaps://``) or STARTTLS (``imap://``)."""

    def __init__(self, url: str, password: str, timeout_s: float = 15.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise ConfigError(f"probe.mailbox: {url!r} is not imap[s]://user@host[:port][/folder]")
        self.host = parts.hostname
        self.port = parts.port or (993 if parts.scheme == "imaps" else 143)
        self.tls = parts.scheme == "imaps"
        self.user = unquote(parts.username)
        self.folder = unquote(parts.path.strip("/")) or "INBOX"
        self.password = password
        self.timeout_s = timeout_s
        self.where = f"{parts.scheme}://{parts.username}@{self.host}:{self.port}/{self.folder}"
        self._imap: imaplib.IMAP4 | None = None

    def _connect(self) -> imaplib.IMAP4:
        if self._imap is not None:
            self._imap.noop()  # new messages show up in the selected folder
            return self._imap
        context = ssl.create_default_context()
        imap: imaplib.IMAP4
        if self.tls:
            imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=self.timeout_s)
        else:
            imap = imaplib.IMAP4(self.host, self.port, timeout=self.timeout_s)
            if "STARTTLS" in imap.capabilities:
                imap.starttls(context)
            elif not is_loopback(self.host):
                imap.logout()
                raise ConfigError(f"{self.where}: no STARTTLS offered; the password would go in clear")
        imap.login(self.user, self.password)
        status, _ = imap.select(_quoted(self.folder))
        if status != "OK":
            raise OSError(f"{self.where}: cannot select the folder")
        self._imap = imap
        return imap

    def messages(self, address: str) -> list[Found]:
        imap = self._connect()
        since = time.strftime("%d-%b-%Y", time.gmtime(time.time() - 86400))
        status, data = imap.uid("SEARCH", "SINCE", since, "TO", _quoted(address))
        if status != "OK":
            raise OSError(f"{self.where}: SEARCH failed")
        found = []
        for uid in (data[0] or b"").split():
            status, parts = imap.uid("FETCH", uid.decode(), "(INTERNALDATE RFC822)")
            fetched = [p for p in parts if isinstance(p, tuple)]
            if status != "OK" or not fetched:
                continue
            head, body = fetched[0]
            message = parse(body)
            if not addressed_to(message, address):
                continue
            stamp = imaplib.Internaldate2tuple(head)
            received = time.mktime(stamp) if stamp else time.time()
            found.append(Found(uid.decode(), str(message.get("Message-ID", "")), code_of(message), received))
        return found

    def delete(self, ids: list[str]) -> None:
        if not ids:
            return
        imap = self._connect()
        imap.uid("STORE", ",".join(ids), "+FLAGS", "(\\Deleted)")
        imap.expunge()

    def close(self) -> None:
        if self._imap is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self._imap.logout()
            self._imap = None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_mailbox(spec: str, base: Path, password: str | None) -> Mailbox:
    """The mailbox ``probe.mailbox`` (or ``--mailbox``) names: an ``imap[s]://`` URL, or a
    directory (relative to the settings file's)."""
    if spec.startswith(("imap://", "imaps://")):
        if not password:
            raise ConfigError(
                "probe.mailbox is an IMAP account: its password is the secret probe_mailbox_password "
                "(a file probe_mailbox_password in --credentials-dir, probe.mailbox_password_file, "
                "or SIGIT_PROBE_MAILBOX_PASSWORD)"
            )
        return ImapMailbox(spec, password)
    if "://" in spec:
        raise ConfigError(f"probe.mailbox: {spec!r}: only imap://, imaps:// or a directory")
    path = Path(spec).expanduser()
    return DirectoryMailbox(path if path.is_absolute() else base / path)

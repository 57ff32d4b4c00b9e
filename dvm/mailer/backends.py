"""Where rendered messages go: an SMTP server (aiosmtplib) or ``.eml`` files (development).

Failures are classified once, here: a 4xx reply, a timeout or a network error is temporary (retry
with backoff); a 5xx reply is permanent (dead letter, reason kept).

A backend calls ``accepted()`` as soon as the server has accepted a message, and lets no other
message reach its end of data until that call returns: the worker writes the outcome there, so at
any moment at most one accepted message is not yet marked sent (at most one duplicate per crash).
The envelopes (MAIL, RCPT) of concurrent messages still overlap; only the DATA exchanges queue.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiosmtplib

from dvm.config import MailSettings
from dvm.errors import ConfigError, DVMError
from dvm.mailer.message import Outgoing


class DeliveryError(DVMError):
    """A message was not accepted. ``permanent`` failures are not retried; ``unreachable`` ones
    are the server's, not the message's (no connection, a timeout, a dropped session): an
    outage that every message meets alike."""

    def __init__(self, reason: str, *, permanent: bool, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.unreachable = unreachable


Accepted = Callable[[], Awaitable[None]]
"""Called once the server accepted the message, before any other message may be accepted."""


class Backend(Protocol):
    async def send(self, message: Outgoing, accepted: Accepted) -> None: ...

    async def close(self) -> None: ...


def classify(exc: BaseException, recipient: str = "") -> DeliveryError:
    """Map an aiosmtplib or network exception to a temporary or permanent failure, its reason
    made safe for logs and the database (see :func:`redact`)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(500 <= c < 600 for c in codes)
        detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        reason = f"recipient refused: {detail}"
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        reason, permanent = f"{exc.code} {exc.message}", 500 <= exc.code < 600
    elif isinstance(exc, UNREACHABLE):
        reason = f"{type(exc).__name__}: {exc}"
        return DeliveryError(redact(reason, recipient), permanent=False, unreachable=True)
    elif isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        reason, permanent = f"{type(exc).__name__}: {exc}", False
    elif isinstance(exc, UnicodeError | ValueError):  # an address or message that cannot be encoded
        reason, permanent = f"cannot encode the message: {type(exc).__name__}", True
    else:
        reason, permanent = f"{type(exc).__name__}: {exc}", False
    return DeliveryError(redact(reason, recipient), permanent=permanent)


UNREACHABLE = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)
"""Exceptions that mean the server cannot be reached or talked to, whatever the message."""

_ADDRESS = re.compile(r"<?[^\s<>()\[\],;:\"'`@]+@[^\s<>()\[\],;:\"'`@]+>?")


def redact(text: str, recipient: str = "") -> str:
    """Server text as it may be logged and stored: every address (anything@anything) and the
    recipient's local part replaced by ``<address>``, control characters escaped (a newline
    in a server's reply must not start a log line of its own)."""
    text = _ADDRESS.sub("<address>", text)
    local = recipient.rpartition("@")[0]
    if len(local) >= 2:
        text = re.sub(rf"(?<![\w.+-]){re.escape(local)}(?![\w.+-])", "<address>", text, flags=re.IGNORECASE)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text


NO_SMTPUTF8 = "the SMTP server does not offer SMTPUTF8, which this non-ASCII address needs (RFC 6531)"


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal (``127.0.0.0/8``, ``::1``): traffic that never
    leaves the machine."""
    host = host.strip().rstrip(".").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth_transport(settings: MailSettings) -> None:
    """Refuse settings that would send the SMTP password in clear: AUTH needs TLS, unless the
    server is on this machine (loopback)."""
    in_clear = settings.backend == "smtp" and settings.username and settings.tls == "none"
    if in_clear and not is_loopback(settings.host):
        raise ConfigError(
            f'mail.username is set but mail.tls is "none": SMTP AUTH would send the password in '
            f'clear to {settings.host}; set mail.tls to "starttls" or "implicit" (only a loopback '
            "host such as 127.0.0.1 may take AUTH without TLS)"
        )


class SmtpBackend:
    """A small pool of reused SMTP connections (one per concurrent sender)."""

    def __init__(
        self, settings: MailSettings, password: str = "", tls_context: ssl.SSLContext | None = None
    ) -> None:
        check_auth_transport(settings)
        self._settings = settings
        self._password = password
        self._tls_context = tls_context
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))
        self._accepting = asyncio.Lock()  # one end of data (and its outcome's commit) at a time
        self.connections_opened = 0

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.tls == "implicit",
            start_tls=s.tls == "starttls",
            timeout=s.timeout_s,
            tls_context=self._tls_context,
        )

    async def send(self, message: Outgoing, accepted: Accepted) -> None:
        async with self._slots:
            client: aiosmtplib.SMTP | None
            client = self._idle.get_nowait() if not self._idle.empty() else self._client()
            try:
                if not client.is_connected:
                    await client.connect()
                    self.connections_opened += 1
                    if self._settings.username:
                        await self._login(client)
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()
                options = [f"SIZE={len(message.data)}"] if client.supports_extension("size") else []
                encoding = "ascii"
                if not (message.recipient.isascii() and message.sender.isascii()):
                    if not client.supports_extension("smtputf8"):
                        self._idle.put_nowait(client)  # nothing was sent: the session is clean
                        client = None
                        raise DeliveryError(NO_SMTPUTF8, permanent=True)
                    options.append("SMTPUTF8")
                    encoding = "utf-8"
                await client.mail(message.sender, options=options, encoding=encoding)
                await client.rcpt(message.recipient, encoding=encoding)
                async with self._accepting:
                    await client.data(message.data)
                    await accepted()
            except BaseException as exc:
                if client is not None:
                    client.close()  # the session state is unknown: never reuse it
                if isinstance(exc, asyncio.CancelledError | DeliveryError):
                    raise
                raise classify(exc, message.recipient) from exc
            self._idle.put_nowait(client)

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        """SMTP AUTH, only over TLS or to a loopback host: never the password in clear."""
        if client.get_transport_info("sslcontext") is None and not is_loopback(self._settings.host):
            raise DeliveryError("refusing to send SMTP AUTH over a connection without TLS", permanent=False)
        await client.login(self._settings.username, self._password)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()


class FileBackend:
    """Writes each message to ``<dir>/<Message-ID token>.eml`` (atomically; a resend overwrites)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made = False

    async def send(self, message: Outgoing, accepted: Accepted) -> None:
        token = message.message_id.strip("<>").partition("@")[0]
        try:
            if not self._made:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._made = True
            tmp = self.directory / f".{token}.tmp"
            tmp.write_bytes(message.data)
            os.replace(tmp, self.directory / f"{token}.eml")
        except OSError as exc:
            self._made = False  # the directory may have gone: make it again on the next try
            raise DeliveryError(
                f"cannot write {self.directory}: {exc.strerror}", permanent=False, unreachable=True
            ) from exc
        await accepted()  # nothing awaited since the write: no other message came in between

    async def close(self) -> None:
        return None

"""Log output: plain text lines or one JSON object per line (``--log-format json``).

Structured values travel in ``extra={"fields": {...}}``; the JSON formatter emits them as keys.
Nothing logged may hold a code, entropy, backup, email address or decrypted content.

Under systemd, stderr goes to the journal (``$JOURNAL_STREAM`` names that stream). There each
line starts with its syslog priority, ``<4>`` for a WARNING, which journald reads as the entry's
priority (``SyslogLevelPrefix=``, on by default) and strips, so ``journalctl -p warning`` filters;
every line of a traceback carries its record's priority. The journal stamps entries itself, so
text lines leave out their own time there.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from dvm.nostr.encoding import is_digits

SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
"""Python's levels as syslog priorities (crit, err, warning, info, debug)."""


def iso_utc(unix: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-01T15:47:57.123Z``."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def priority(levelno: int) -> int:
    """The syslog priority of a Python level (a level between two takes the more severe)."""
    for level in sorted(SYSLOG_PRIORITY, reverse=True):
        if levelno >= level:
            return SYSLOG_PRIORITY[level]
    return SYSLOG_PRIORITY[logging.DEBUG]


class TextFormatter(logging.Formatter):
    """``<ISO 8601 UTC> LEVEL logger: message``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return iso_utc(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class JournalPrefix(logging.Formatter):
    """Another formatter's lines, each prefixed with the record's syslog priority (``<4>``)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def to_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal's: ``$JOURNAL_STREAM`` (``device:inode``) names it."""
    environ = os.environ if environ is None else environ
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (is_digits(device) and is_digits(inode)):
        return False
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no real file behind the stream (a test's capture)
        return False
    return (found.st_dev, found.st_ino) == (int(device), int(inode))


def formatter(log_format: str, *, journal: bool) -> logging.Formatter:
    """The formatter for ``log_format`` (``text`` or ``json``), prefixed for the journal."""
    if log_format == "json":
        inner: logging.Formatter = JsonFormatter()
    elif journal:
        inner = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    else:
        inner = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    return JournalPrefix(inner) if journal else inner


def setup(log_format: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, journal=to_journal(sys.stderr)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("websockets", "aiosmtplib", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

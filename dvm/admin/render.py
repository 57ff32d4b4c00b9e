"""What admin commands print, in one place: tables for people; JSON, CSV or JSON lines for scripts.

A command returns :class:`Rows`, a :class:`Record` or a :class:`Message`; :func:`render` turns it
into text. Times are integer Unix seconds inside the program and ISO 8601 UTC in every format
(``2026-12-01T15:47:56Z``); tables and records add the relative age (``5 min ago``). A field is a
time when its name is ``at``, ends in ``_at``, or is ``grace_deadline``. Tables shorten long hex
keys to 16 characters: any 8 or more of them select it again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

FORMATS = ("table", "json", "csv", "nl")
SHORT_KEY_CHARS = 16


@dataclass(frozen=True, slots=True)
class Rows:
    """A listing; ``columns`` picks and orders the table's columns (every format keeps all)."""

    rows: list[dict[str, Any]]
    columns: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One thing shown in full, as ``key  value`` lines."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """The outcome of an action: ``text`` for people, ``data`` for scripts."""

    data: dict[str, Any]
    text: str = field(default="")


Output = Rows | Record | Message


def render(output: Output, fmt: str, now: int) -> str:
    """``output`` in ``fmt`` (one of :data:`FORMATS`)."""
    if isinstance(output, Rows):
        data: Any = [machine(row) for row in output.rows]
        items = data
    else:
        data = machine(output.data)
        items = [data]
    if fmt == "json":
        return as_json(data)
    if fmt == "nl":
        return "\n".join(orjson.dumps(item).decode() for item in items)
    if fmt == "csv":
        return as_csv(items)
    if isinstance(output, Rows):
        return table(output.rows, now, output.columns)
    if isinstance(output, Record):
        return record(output.data, now)
    return output.text


def is_time(key: str) -> bool:
    return key == "at" or key.endswith("_at") or key in ("grace_deadline", "last_seen")


def iso(unix: int | None) -> str | None:
    """``2026-12-01T15:47:56Z``, or None for None."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(unix: int, now: int) -> str:
    """``5 min ago`` or ``in 3 h``: the coarsest unit that keeps a number >= 1."""
    delta = now - unix
    span = abs(delta)
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if span >= seconds:
            amount = f"{span // seconds} {unit}"
            break
    else:
        amount = f"{span} s"
    if span == 0:
        return "now"
    return f"{amount} ago" if delta > 0 else f"in {amount}"


def human_time(unix: int | None, now: int) -> str:
    if unix is None:
        return "-"
    return f"{iso(unix)} ({age(unix, now)})"


def machine(value: Any, key: str = "") -> Any:
    """A copy of ``value`` for scripts: every time field in ISO 8601 UTC, and every absent value
    ``None`` (the database keeps some as ``""``: a pending email, a pubkey, an error), so JSON has
    ``null`` for "none" everywhere, never ``""`` in one field and ``null`` in the next."""
    if isinstance(value, dict):
        return {k: machine(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [machine(v, key) for v in value]
    if is_time(key) and isinstance(value, int) and not isinstance(value, bool):
        return iso(value)
    if value == "":
        return None
    return value


def table(rows: Sequence[dict[str, Any]], now: int, columns: Sequence[str] | None = None) -> str:
    """Left-aligned columns with a header; ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(col), col, now, short=True) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def record(row: dict[str, Any], now: int) -> str:
    """One record as ``key  value`` lines."""
    if not row:
        return "(none)"
    width = max(len(k) for k in row)
    return "\n".join(f"{k.ljust(width)}  {_cell(v, k, now, short=False)}" for k, v in row.items())


def as_json(data: object) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def as_csv(items: Sequence[dict[str, Any]]) -> str:
    """A header row and one row per item; booleans, None and nested values as in JSON."""
    out = io.StringIO()
    if not items:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(items[0].keys()), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: _csv_cell(v) for k, v in item.items()})
    return out.getvalue().rstrip("\n")


def _csv_cell(value: object) -> object:
    if value is None or isinstance(value, bool | dict | list):
        return "" if value is None else orjson.dumps(value).decode()
    return value


def _cell(value: object, key: str, now: int, *, short: bool) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_time(key) and isinstance(value, int):
        return human_time(value, now)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    text = str(value)
    if short and len(text) > SHORT_KEY_CHARS and _is_hex(text):
        return text[:SHORT_KEY_CHARS]
    return text


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)

"""What a probe saw, step by step, and its three renderings: lines for people, JSON for
scripts, and a Prometheus text file for node_exporter's textfile collector.

Steps, in order (their names are stable: scripts and alert rules use them):

=============  ================================================================================
``dvm``        the DVM's key (and relays), from ``--dvm``, ``probe.dvm``, the key, or NIP-05
``announce``   its NIP-89 announcement on its relays: request kind, PoW minimums, protocols
``publish``    the request, mined to the announced PoW, accepted by the relays (each one's OK)
``reply``      the DVM's reply seen on a relay, opened, and its outcome
``outbox``     the mail row the request queued, sent or not (needs the database)
``mailbox``    the code arrived in the probe's mailbox (needs a mailbox to read)
``verify``     ``verify_code`` with that code answered ok
=============  ================================================================================

A step is ``ok``, ``failed`` or ``skipped`` (what it needs is not there: no database, no
mailbox); the probe passes when no step failed.
"""

from __future__ import annotations

import enum
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEPS = ("dvm", "announce", "publish", "reply", "outbox", "mailbox", "verify")


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Step:
    """One hop: its status, when it ended (ms since the probe started), what it took, and a line."""

    name: str
    status: Status
    at_ms: float | None
    ms: float | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    dvm: str = ""
    email: str = ""
    started_at: float = field(default_factory=time.time)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return all(step.status is not Status.FAILED for step in self.steps)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dvm": self.dvm,
            "email": self.email,
            "started_at": _iso(self.started_at),
            "duration_ms": round(self.duration_ms, 1),
            "steps": [
                {
                    "step": s.name,
                    "status": str(s.status),
                    "at_ms": None if s.at_ms is None else round(s.at_ms, 1),
                    "ms": None if s.ms is None else round(s.ms, 1),
                    "detail": s.detail,
                    **s.data,
                }
                for s in self.steps
            ],
            "notes": self.notes,
        }

    def text(self) -> str:
        lines = [f"probe of {self.dvm or '?'} with {self.email or '?'}: {'OK' if self.ok else 'FAILED'}"]
        for s in self.steps:
            at = "" if s.at_ms is None else f"{s.at_ms:8.0f} ms"
            lines.append(f"  {s.name:<9} {s.status!s:<7} {at:>11}  {s.detail}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def metrics(self) -> str:
        """The Prometheus text format (the textfile collector reads it)."""
        out = [
            "# HELP sigit_probe_success Whether the last sigit-dvm probe passed every step.",
            "# TYPE sigit_probe_success gauge",
            f"sigit_probe_success {int(self.ok)}",
            "# HELP sigit_probe_duration_seconds How long the last probe took.",
            "# TYPE sigit_probe_duration_seconds gauge",
            f"sigit_probe_duration_seconds {self.duration_ms / 1000:.3f}",
            "# HELP sigit_probe_finished_timestamp_seconds When the last probe finished (Unix time).",
            "# TYPE sigit_probe_finished_timestamp_seconds gauge",
            f"sigit_probe_finished_timestamp_seconds {self.started_at + self.duration_ms / 1000:.0f}",
            "# HELP sigit_probe_step_status Each step of the last probe: 1 in its status, 0 in the others.",
            "# TYPE sigit_probe_step_status gauge",
        ]
        for s in self.steps:
            out += [
                f'sigit_probe_step_status{{step="{s.name}",status="{v}"}} {int(s.status is v)}'
                for v in Status
            ]
        out += [
            "# HELP sigit_probe_step_seconds When each step of the last probe ended, from its start.",
            "# TYPE sigit_probe_step_seconds gauge",
        ]
        out += [
            f'sigit_probe_step_seconds{{step="{s.name}"}} {s.at_ms / 1000:.3f}' for s in self.steps if s.at_ms
        ]
        publish = self.step("publish")
        if publish is not None and publish.data.get("relays"):
            out += [
                "# HELP sigit_probe_relay_accepted Whether each relay accepted the probe's request.",
                "# TYPE sigit_probe_relay_accepted gauge",
            ]
            out += [
                f'sigit_probe_relay_accepted{{relay="{_label(r["relay"])}"}} {int(r["accepted"])}'
                for r in publish.data["relays"]
            ]
        outbox = self.step("outbox")
        if outbox is not None and "new_code" in outbox.data:
            out += [
                "# HELP sigit_probe_new_code 1: the probe's request mailed a new code; 0: it joined the "
                "live code of the probe's mailbox (codes are shared per mailbox and kind).",
                "# TYPE sigit_probe_new_code gauge",
                f"sigit_probe_new_code {int(bool(outbox.data['new_code']))}",
            ]
        return "\n".join(out) + "\n"


def write_metrics(path: Path, text: str) -> None:
    """Replace ``path`` at once (a scrape never reads half a file), readable by the collector."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))

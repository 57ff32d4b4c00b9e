"""Outages as the log tells them: one WARNING, reminders at most every reminder_s, one INFO."""

from __future__ import annotations

import logging

from dvm.outage import Outage, one_line


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_an_outage_is_a_warning_reminders_and_an_info(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    outage = Outage(logging.getLogger("t"), "thing", reminder_s=60, clock=clock)
    outage.ok()  # up: nothing to say
    for _ in range(100):  # a try every second for 100 s
        outage.failed("refused")
        clock.t += 1
    outage.ok()
    outage.ok()
    told = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert told == [
        ("WARNING", "thing unavailable: refused (retrying; a line follows when it is back)"),
        ("WARNING", "thing still unavailable after 60 s (61 failed tries): refused"),
        ("INFO", "thing back after 100 s (100 failed tries; last: refused)"),
    ]
    assert not outage.down


def test_only_a_source_that_failed_ends_the_outage(caplog):
    """A locked SQLite database still answers reads: a read that works is no news."""
    caplog.set_level(logging.INFO)
    outage = Outage(logging.getLogger("t"), "database", clock=Clock())
    outage.failed("database is locked", "mailer.outbox.claim_due")
    outage.ok("store.repository.due_replies")
    assert outage.down
    outage.ok("mailer.outbox.claim_due")
    assert not outage.down and len(caplog.records) == 2


def test_one_line_joins_libpq_lines():
    text = (
        'connection failed: connection to server at "127.0.0.1", port 1 failed: refused\n\tIs it running?\n'
    )
    assert (
        one_line(text)
        == 'connection failed: connection to server at "127.0.0.1", port 1 failed: refused Is it running?'
    )

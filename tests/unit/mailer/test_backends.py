"""Failure reasons are safe to log and store: no address, no raw control characters."""

from __future__ import annotations

import aiosmtplib
import pytest

from dvm.mailer.backends import classify

RECIPIENT = "ana.b@example.org"


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPRecipientRefused(550, "5.1.1 <ana.b@example.org>: user ana.b unknown", RECIPIENT),
        aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(450, "mailbox ANA.B@EXAMPLE.ORG busy", RECIPIENT)]
        ),
        aiosmtplib.SMTPDataError(554, "rejected for Ana.B@Example.org, see other@example.net"),
        aiosmtplib.SMTPServerDisconnected("lost talking about ana.b@example.org"),
    ],
)
def test_addresses_are_redacted_from_failure_reasons(exc):
    reason = classify(exc, RECIPIENT).reason
    assert "@" not in reason and "ana.b" not in reason.lower() and "<address>" in reason


def test_a_newline_in_a_server_reply_cannot_start_a_log_line():
    reason = classify(
        aiosmtplib.SMTPDataError(451, "try later\n2026-01-01 INFO forged line\r"), RECIPIENT
    ).reason
    assert reason.isprintable() and "\\n2026" in reason


def test_an_address_that_cannot_be_encoded_is_a_permanent_failure():
    try:
        "josé@example.org".encode("ascii")
    except UnicodeEncodeError as exc:
        failure = classify(exc, "josé@example.org")
    assert failure.permanent and "josé" not in failure.reason

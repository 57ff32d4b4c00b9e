"""Tunables of the account state machine, with the defaults DESIGN.md sets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountRules:
    """Limits enforced by :func:`dvm.accounts.machine.decide`. All durations in seconds."""

    code_ttl_s: int = 15 * 60
    max_code_attempts: int = 5
    max_codes_per_email_per_hour: int = 5
    resend_cooldown_s: int = 60
    activation_window_s: int = 60 * 60  # a verified signup session must activate within this
    code_window_s: int = 60 * 60  # the window of the three code caps
    max_codes_per_domain_per_hour: int = 300
    max_codes_per_hour: int = 3000  # every code mail, all addresses together
    code_failures_free_per_day: int = 10  # wrong codes a day (per mailbox or account) before the back-off
    code_failure_backoff_s: int = 60  # then: one try per session, and codes this far apart, doubling
    email_grace_s: int = 7 * 24 * 60 * 60  # to confirm an email change before it lapses
    account_session_s: int = 60 * 60  # a key that proved the address may act for the account this long
    private_mode: bool = False  # request_account/request_login never reveal whether an email exists

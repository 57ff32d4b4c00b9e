"""Tunables of the account state machine, with the defaults DESIGN.md sets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountRules:
    """Limits enforced by :func:`dvm.accounts.machine.decide`. All durations in seconds."""

    code_ttl_s: int = 15 * 60
    max_code_attempts: int = 5  # wrong codes a session may try before it is locked
    max_codes_per_email_per_hour: int = (
        5  # new codes minted for one mailbox; past it, sessions share the live one
    )
    resend_cooldown_s: int = 60  # a code minted this recently is shared, not replaced
    activation_window_s: int = 60 * 60  # a verified signup session must activate within this
    code_window_s: int = 60 * 60  # the window of the three code caps
    max_codes_per_domain_per_hour: int = 300  # past it, new codes to unproven addresses there cost more PoW
    max_codes_per_hour: int = 3000  # the same, every code mail to unproven addresses together
    code_failures_free: int = (
        10  # wrong codes on a mailbox's codes within the window; then its codes are long
    )
    code_failure_window_s: int = 7 * 24 * 60 * 60
    email_grace_s: int = 7 * 24 * 60 * 60  # to confirm an email change before it lapses
    account_session_s: int = 60 * 60  # a key that proved the address may act for the account this long
    private_mode: bool = False  # request_account/request_login never reveal whether an email exists

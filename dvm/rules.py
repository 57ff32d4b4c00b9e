"""Everything the service enforces, grouped: the intake's, the account machine's, the replies'.

Plain data below the service and the settings: ``dvm.config`` builds it from the operator's file,
``dvm.service`` enforces it, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dvm.accounts.rules import AccountRules
from dvm.protocol.intake import IntakeRules


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything the service enforces, grouped."""

    intake: IntakeRules = field(default_factory=IntakeRules)
    accounts: AccountRules = field(default_factory=AccountRules)
    reply_ttl_s: int = 3600
    empty_success: bool = False  # the seed's empty content for a success without data (leaks success)
    publish_grace_s: int = 30  # before the retry loop republishes a reply not yet marked published

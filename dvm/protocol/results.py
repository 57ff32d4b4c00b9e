"""What a request's reply says, before it is encrypted: a success with data, or a failure.

Plain data below both the wire (``dvm.protocol.replies`` encrypts it) and the account machine
(which decides it), so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dvm.errors import RequestError


@dataclass(frozen=True, slots=True)
class Success:
    """A successful reply; ``data`` is None for an empty reply content."""

    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """An error reply: a stable code, a human message and small integer details."""

    code: str
    message: str
    details: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, error: RequestError) -> Failure:
        return cls(error.code, error.message, tuple(sorted(error.details.items())))


Reply = Success | Failure

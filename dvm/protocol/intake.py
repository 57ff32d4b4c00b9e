"""The edge: from a relay's event to a typed request, in the order DESIGN.md fixes.

1. Cheap filters (kind, addressed to us) -- otherwise silence.
2. Recompute the id and verify the signature -- otherwise silence: an unsigned or forged event has
   no trustworthy author to answer.
3. A NIP-40 ``expiration`` already passed -- silence: the author no longer wants an answer.
4. PoW against the lowest per-method minimum (the method is still encrypted) -- otherwise silence:
   without real work a stranger must cost us nothing, neither a reply nor a row.
5. ``created_at`` inside the window, then decrypt from ``event.pubkey``, decode, and the method's
   own PoW minimum. These refusals (``stale_event``, ``bad_request``, ``pow_too_low``...) are
   answered, since the author is authenticated, has done real work and can read an encrypted
   reply; the pipeline answers them from memory under a global budget, never storing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from dvm.errors import (
    BadRequest,
    DecryptionError,
    InsufficientPow,
    InvalidEvent,
    NostrError,
    PowTooLow,
    RequestError,
    StaleEvent,
)
from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import Event, verify_event
from dvm.protocol.methods import ACCOUNT_KEY_METHODS, Method, Request, RequestLimits, decode_request
from dvm.protocol.seal import open_seal

DEFAULT_REQUEST_KIND = 5780
DEFAULT_POW_BITS: Mapping[Method, int] = MappingProxyType(
    {
        Method.REQUEST_ACCOUNT: 16,
        Method.REGISTER: 16,
        Method.REQUEST_LOGIN: 16,
        Method.VERIFY_CODE: 12,
        Method.ACTIVATE: 12,
        Method.RESEND_CODE: 12,
    }
)


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What an event must satisfy to be decided."""

    request_kind: int = DEFAULT_REQUEST_KIND
    created_at_window_s: int = 600
    pow_bits: Mapping[Method, int] = field(default_factory=lambda: DEFAULT_POW_BITS)
    request_limits: RequestLimits = field(default_factory=RequestLimits)

    @property
    def reply_kind(self) -> int:
        return self.request_kind + 1000

    @property
    def pow_gate_bits(self) -> int:
        """The minimum any method accepts: checked before decrypting."""
        return min(self.pow_bits.get(method, 0) for method in Method)


@dataclass(frozen=True, slots=True)
class Incoming:
    """An authenticated request: either decoded, or refused with an error to send back."""

    event: Event
    scheme: Scheme
    request: Request | None = None
    refusal: RequestError | None = None
    signer: str | None = None  # the account key that signed the request's seal
    peer_secrets: tuple[bytes, bytes] | None = None  # the ECDH results, so the reply need not redo it

    @property
    def method(self) -> str:
        return self.request.method.value if self.request is not None else ""


def addressed_to(event: Event, dvm_pubkey: str, rules: IntakeRules) -> bool:
    """Kind and ``p`` tag match: the filter a relay subscription should already apply."""
    return event.kind == rules.request_kind and dvm_pubkey in event.tag_values("p")


def open_request(event: Event, encryptor: Encryptor, rules: IntakeRules, now: int) -> Incoming:
    """Authenticate and decode ``event``.

    Raises :class:`~dvm.errors.InvalidEvent` (or its subclass ``InvalidSignature``) when the event
    must be dropped silently; returns an :class:`Incoming` otherwise, refused or not.
    """
    if not addressed_to(event, encryptor.key.pubkey_hex, rules):
        raise InvalidEvent("not a request addressed to this DVM")
    event_id = verify_event(event)
    expiration = event.first_tag("expiration")
    if expiration is not None and len(expiration) > 1 and _expired(expiration[1], now):
        raise InvalidEvent("expired (NIP-40)")
    nip13.check_pow(event_id, event.tags, rules.pow_gate_bits)  # InsufficientPow: silence
    scheme = Scheme.of(event.content)
    try:
        if abs(event.created_at - now) > rules.created_at_window_s:
            raise StaleEvent
        try:
            plaintext, scheme = encryptor.decrypt(bytes.fromhex(event.pubkey), event.content)
        except DecryptionError as exc:
            raise BadRequest(f"content cannot be decrypted: {exc}") from exc
        plaintext, signer = open_seal(
            plaintext, event.pubkey, encryptor.key.pubkey_hex, now, rules.created_at_window_s
        )
        request = decode_request(plaintext, rules.request_limits)
        if signer is not None and request.method not in ACCOUNT_KEY_METHODS:
            raise BadRequest(f"{request.method} cannot be sealed: only account methods are")
        _check_pow(event_id, event, rules.pow_bits.get(request.method, 0))
    except RequestError as refusal:
        return Incoming(event, scheme, refusal=refusal)
    secrets = encryptor.peer_secrets(bytes.fromhex(event.pubkey))
    return Incoming(event, scheme, request=request, signer=signer, peer_secrets=secrets)


def open_batch(
    events: Sequence[Event], encryptor: Encryptor, rules: IntakeRules, now: int
) -> list[Incoming | NostrError]:
    """:func:`open_request` over a batch, in order; events to drop silently come back as their
    ``NostrError``. Pure: the daemon runs it inline or in its worker process."""
    opened: list[Incoming | NostrError] = []
    for event in events:
        try:
            opened.append(open_request(event, encryptor, rules, now))
        except NostrError as exc:
            opened.append(exc)
    return opened


def _expired(value: str, now: int) -> bool:
    """A NIP-40 timestamp in the past; one that is not a number is ignored, as relays do."""
    return value.isdigit() and len(value) <= 12 and int(value) <= now


def _check_pow(event_id: bytes, event: Event, minimum: int) -> None:
    try:
        nip13.check_pow(event_id, event.tags, minimum)
    except InsufficientPow as exc:
        raise PowTooLow(f"{exc}.", required_bits=minimum) from exc

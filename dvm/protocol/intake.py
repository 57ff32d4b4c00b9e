"""The edge: from a relay's event to a typed request, in the order DESIGN.md fixes.

1. Cheap filters (kind, addressed to us) -- otherwise silence.
2. Recompute the id, then PoW against the lowest per-method minimum (the method is still
   encrypted) -- otherwise silence: without real work a stranger must cost us nothing, neither a
   reply nor a row, nor a signature check (a hash costs a few microseconds, a BIP-340
   verification 50-70: cost before work, in order of cost). :func:`paid_work` is these two, which
   the pipeline also runs before it queues an event.
3. Verify the signature -- otherwise silence: an unsigned or forged event has no trustworthy
   author to answer.
4. A NIP-40 ``expiration`` already passed -- silence: the author no longer wants an answer.
5. ``created_at`` inside the window, then decrypt from ``event.pubkey``, decode, the method's
   own PoW minimum, and for a method that names an account key (``register``, ``activate``) the
   proof that the request is signed by that key (a seal by it, or the event itself). These
   refusals (``stale_event``, ``bad_request``, ``pow_too_low``, ``key_not_proven``...) are
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
    KeyNotProven,
    NostrError,
    PowTooLow,
    RequestError,
    StaleEvent,
    Unopenable,
)
from dvm.nostr import nip13
from dvm.nostr.encoding import is_digits
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import Event, check_id, verify_signature
from dvm.protocol.methods import (
    KEY_NAMING_METHODS,
    SEALABLE_METHODS,
    Activate,
    Method,
    Register,
    Request,
    RequestLimits,
    decode_envelope,
)
from dvm.protocol.seal import Opened, open_seal

DEFAULT_REQUEST_KIND = 5780
DEFAULT_POW_BITS: Mapping[Method, int] = MappingProxyType(
    dict.fromkeys(Method, 12) | {Method.REQUEST_ACCOUNT: 16, Method.REGISTER: 16, Method.REQUEST_LOGIN: 16}
)
"""Every method's NIP-13 minimum by default: 16 bits where a stranger names an address to mail."""


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What an event must satisfy to be decided."""

    request_kind: int = DEFAULT_REQUEST_KIND
    created_at_window_s: int = 600
    pow_bits: Mapping[Method, int] = field(default_factory=lambda: DEFAULT_POW_BITS)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    accept_unproven_keys: bool = False  # versions 1 and 2: register/activate not signed by their key
    pow_gate_bits: int = field(init=False, compare=False, repr=False)
    """The minimum any method accepts: checked before decrypting (computed once: every event asks)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pow_gate_bits", min(self.pow_bits.get(method, 0) for method in Method))

    @property
    def reply_kind(self) -> int:
        return self.request_kind + 1000


@dataclass(frozen=True, slots=True)
class Incoming:
    """An authenticated request: either decoded, or refused with an error to send back."""

    event: Event
    scheme: Scheme
    request: Request | None = None
    refusal: RequestError | None = None
    signer: str | None = None  # the account key that signed the request's seal
    peer_secrets: tuple[bytes, bytes] | None = None  # the ECDH results, so the reply need not redo it
    seal_id: str | None = None  # a seal is used once
    lang: str = ""  # the request's language (BCP 47, lower case), "" for the default
    pow_bits: int = 0  # the proof of work it committed to (and reached): a price may ask for more

    @property
    def method(self) -> str:
        return self.request.method.value if self.request is not None else ""


def addressed_to(event: Event, dvm_pubkey: str, rules: IntakeRules) -> bool:
    """Kind and ``p`` tag match: the filter a relay subscription should already apply."""
    return event.kind == rules.request_kind and dvm_pubkey in event.tag_values("p")


def paid_work(event: Event, rules: IntakeRules) -> int:
    """The proof of work ``event`` committed to, once its id is recomputed and its leading zero
    bits reach that commitment and the lowest minimum: the first checks of :func:`open_request`,
    a hash and no signature. Raises :class:`~dvm.errors.InvalidEvent` (a forged id) or
    :class:`~dvm.errors.InsufficientPow`: junk, to drop before it is queued."""
    nip13.check_pow(check_id(event), event.tags, rules.pow_gate_bits)
    return nip13.committed_target(event.tags) or 0


def open_request(event: Event, encryptor: Encryptor, rules: IntakeRules, now: int) -> Incoming:
    """Authenticate and decode ``event``.

    Raises :class:`~dvm.errors.InvalidEvent` (or its subclass ``InvalidSignature``) when the event
    must be dropped silently; returns an :class:`Incoming` otherwise, refused or not.
    """
    if not addressed_to(event, encryptor.key.pubkey_hex, rules):
        raise InvalidEvent("not a request addressed to this DVM")
    event_id = check_id(event)
    nip13.check_pow(event_id, event.tags, rules.pow_gate_bits)  # InsufficientPow: silence
    verify_signature(event, event_id)
    expiration = event.first_tag("expiration")
    if expiration is not None and len(expiration) > 1 and _expired(expiration[1], now):
        raise InvalidEvent("expired (NIP-40)")
    scheme = Scheme.of(event.content)
    try:
        if abs(event.created_at - now) > rules.created_at_window_s:
            raise StaleEvent
        try:
            plaintext, scheme = encryptor.decrypt(bytes.fromhex(event.pubkey), event.content)
        except DecryptionError as exc:
            raise BadRequest(f"content cannot be decrypted: {exc}") from exc
        opened = open_seal(plaintext, event.pubkey, encryptor.key.pubkey_hex, now, rules.created_at_window_s)
        envelope = decode_envelope(opened.content, rules.request_limits)
        request = envelope.request
        if opened.signer is not None and request.method not in SEALABLE_METHODS:
            raise BadRequest(
                f"{request.method} cannot be sealed: only account methods, register and activate are"
            )
        _check_pow(event_id, event, rules.pow_bits.get(request.method, 0))
        _check_proof(request, opened, event.pubkey, rules)
    except RequestError as refusal:
        return Incoming(event, scheme, refusal=refusal)
    secrets = encryptor.peer_secrets(bytes.fromhex(event.pubkey))
    return Incoming(
        event,
        scheme,
        request=request,
        signer=opened.signer,
        peer_secrets=secrets,
        seal_id=opened.seal_id,
        lang=envelope.lang,
        pow_bits=nip13.committed_target(event.tags) or 0,
    )


def _check_proof(request: Request, opened: Opened, author: str, rules: IntakeRules) -> None:
    """A request naming an account key (register, activate) must be signed by it: sealed by it,
    or (leaking it on the relay) the event itself. Otherwise anyone could claim anyone's key."""
    if request.method not in KEY_NAMING_METHODS:
        return
    assert isinstance(request, Register | Activate)
    if opened.signer is not None:
        if opened.signer != request.pubkey:
            raise BadRequest("the seal is signed by another key than the pubkey the request names")
        return
    if author != request.pubkey and not rules.accept_unproven_keys:
        raise KeyNotProven


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
        except Exception as exc:  # a bug met by one sender's event must not stop the others'
            # repr: the sender chose the text, so no control character reaches a log line
            opened.append(Unopenable(f"opening it raised {type(exc).__name__}: {str(exc)[:200]!r}"))
    return opened


def _expired(value: str, now: int) -> bool:
    """A NIP-40 timestamp in the past; one that is not a number is ignored, as relays do."""
    return is_digits(value) and len(value) <= 12 and int(value) <= now


def _check_pow(event_id: bytes, event: Event, minimum: int) -> None:
    try:
        nip13.check_pow(event_id, event.tags, minimum)
    except InsufficientPow as exc:
        raise PowTooLow(f"{exc}.", required_bits=minimum) from exc

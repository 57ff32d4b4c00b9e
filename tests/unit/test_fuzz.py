"""Hostile bytes at the parsers: only the documented errors come out, never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvm.errors import DecryptionError, InvalidEvent, NostrError, RequestError, Unopenable
from dvm.nostr import nip04, nip13, nip44
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import parse_event, parse_event_json, sign_event, verify_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import request_plaintext
from dvm.protocol.intake import Incoming, IntakeRules, open_batch
from dvm.protocol.methods import decode_request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {
        "id": st.text(max_size=70) | st.just("ab" * 32),
        "pubkey": st.text(max_size=70) | st.just("cd" * 32),
        "created_at": st.integers(-5, 2**64) | st.text(max_size=5),
        "kind": st.integers(-5, 70000) | st.none(),
        "tags": st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=4) | JSON,
        "content": st.text(max_size=50) | JSON,
        "sig": st.text(max_size=130) | st.just("ef" * 64),
    }
)
FAST = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@FAST
@given(st.binary(max_size=300))
def test_event_parser_on_random_bytes_raises_only_invalid_event(raw):
    with contextlib.suppress(InvalidEvent):
        verify_event(parse_event_json(raw))


@FAST
@given(FIELDS)
def test_event_parser_on_event_shaped_json_raises_only_invalid_event(fields):
    with contextlib.suppress(InvalidEvent):
        verify_event(parse_event(fields))


@FAST
@given(
    st.text(max_size=400) | st.binary(max_size=300).map(lambda b: __import__("base64").b64encode(b).decode())
)
def test_decryption_of_random_payloads_raises_only_decryption_errors(payload):
    for decrypt in (lambda p: nip44.decrypt(p, bytes(32)), lambda p: nip04.decrypt(p, bytes(32))):
        with contextlib.suppress(DecryptionError):
            decrypt(payload)


@FAST
@given(JSON)
def test_request_decoder_raises_only_request_errors(body):
    for text in (json.dumps(body), json.dumps({"method": "activate", "params": body})):
        with contextlib.suppress(RequestError):
            decode_request(text)


KNOWN_TAGS = st.sampled_from(["expiration", "nonce", "p", "e", "encrypted", "t", ""])
TAG_TEXT = st.text(max_size=8) | st.sampled_from(["²", "١٢", "٣", "⁹", "1²", "-1", "0" * 13, "𝟗"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(KNOWN_TAGS, TAG_TEXT, TAG_TEXT), max_size=3))
def test_a_signed_request_with_any_tags_is_opened_or_dropped_never_raised(extra):
    """A signed event with real PoW reaches the opening's every check; whatever its tags say,
    one sender's event comes back opened or as a drop: a ``²`` in ``expiration`` once raised
    ``ValueError`` out of the batch and stopped every request after it."""
    dvm, client = Encryptor(SecretKey(b"\xd0" * 32)), Encryptor(SecretKey(b"\xc0" * 32))
    now = 1_800_000_000
    content = client.encrypt(dvm.key.pubkey, request_plaintext("status", {}))
    tags = [("p", dvm.key.pubkey_hex), *extra]
    tags = nip13.mine(client.key.pubkey_hex, now, 5780, tags, content, target=4)
    event = sign_event(client.key, 5780, content, now, tags)
    [opened] = open_batch([event], dvm, IntakeRules(pow_bits={}), now)
    assert isinstance(opened, Incoming | NostrError)
    assert not isinstance(opened, Unopenable), opened  # a drop the checks chose, not a bug caught

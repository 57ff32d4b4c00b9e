"""Hostile bytes at the parsers: only the documented errors come out, never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvm.errors import DecryptionError, InvalidEvent, RequestError
from dvm.nostr import nip04, nip44
from dvm.nostr.event import parse_event, parse_event_json, verify_event
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

"""NIP-01 serialization, ids, signing and the strict event parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvm.errors import InvalidEvent, InvalidSignature
from dvm.nostr.event import (
    EventLimits,
    compute_id,
    parse_event,
    parse_event_json,
    serialize,
    sign_event,
    verify_event,
)
from dvm.nostr.keys import SecretKey

KEY = SecretKey(bytes.fromhex("11" * 32))
# Text without lone surrogates: NIP-01 ids are over UTF-8, which cannot encode them.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def reference_serialization(pubkey, created_at, kind, tags, content) -> bytes:
    return json.dumps(
        [0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False
    ).encode()


@given(content=TEXT, tags=st.lists(st.lists(TEXT, max_size=4), max_size=4))
def test_serialization_is_byte_identical_to_the_nip01_reference(content, tags):
    assert serialize("ab" * 32, 1700000000, 5700, tags, content) == reference_serialization(
        "ab" * 32, 1700000000, 5700, tags, content
    )


@pytest.mark.parametrize(
    "content", ["line\nbreak", 'quote"', "back\\slash", "\r\t\b\f", "\x00\x01\x1f\x7f", "é😀\u2028\u2029"]
)
def test_serialization_escapes_exactly_like_nip01(content):
    assert serialize("ab" * 32, 1, 1, [], content) == reference_serialization("ab" * 32, 1, 1, [], content)


def test_lone_surrogates_are_refused():
    with pytest.raises(InvalidEvent):
        serialize("ab" * 32, 1, 1, [], "\ud800")
    with pytest.raises(InvalidEvent):
        parse_event_json(b'{"content":"\\ud800"}')


def test_signed_event_round_trips_through_json_and_verifies():
    event = sign_event(KEY, 5700, "hello", 1700000000, [["p", "00" * 32], ["encrypted"]])
    parsed = parse_event_json(event.to_json())
    assert parsed == event
    assert verify_event(parsed).hex() == event.id


def good_event() -> dict:
    return sign_event(KEY, 1, "hi", 1700000000, [["t", "x"]]).to_dict()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "AB" * 32),
        ("id", "ab" * 31),
        ("pubkey", 5),
        ("sig", "zz" * 64),
        ("created_at", "1700000000"),
        ("created_at", 1.5),
        ("created_at", True),
        ("created_at", -1),
        ("kind", 70000),
        ("kind", None),
        ("tags", "x"),
        ("tags", [["t", 1]]),
        ("tags", [{"a": 1}]),
        ("content", 7),
    ],
)
def test_malformed_fields_are_refused(field, value):
    event = good_event()
    event[field] = value
    with pytest.raises(InvalidEvent):
        parse_event(event)


def test_missing_and_extra_fields_are_refused():
    event = good_event()
    del event["sig"]
    with pytest.raises(InvalidEvent, match="missing"):
        parse_event(event)
    event = good_event() | {"extra": 1}
    with pytest.raises(InvalidEvent, match="unexpected"):
        parse_event(event)


def test_sizes_are_bounded_before_any_crypto():
    limits = EventLimits(max_content_chars=10, max_tags=2, max_tag_items=3, max_tag_item_chars=5)
    for change in (
        {"content": "x" * 11},
        {"tags": [["a"]] * 3},
        {"tags": [["a", "b", "c", "d"]]},
        {"tags": [["a", "x" * 6]]},
    ):
        with pytest.raises(InvalidEvent):
            parse_event(good_event() | change, limits)


def test_tampered_content_fails_the_id_check():
    event = parse_event(good_event() | {"content": "changed"})
    with pytest.raises(InvalidEvent, match="id does not match"):
        verify_event(event)


def test_signature_from_another_key_fails():
    other = sign_event(SecretKey(bytes.fromhex("22" * 32)), 1, "hi", 1700000000, [["t", "x"]])
    event = parse_event(good_event() | {"sig": other.sig})
    with pytest.raises(InvalidSignature):
        verify_event(event)


def test_pubkey_not_on_curve_fails_verification():
    fields = good_event()
    bad_pubkey = "ff" * 32
    fields |= {"pubkey": bad_pubkey}
    fields["id"] = compute_id(bad_pubkey, 1700000000, 1, [["t", "x"]], "hi").hex()
    with pytest.raises(InvalidSignature):
        verify_event(parse_event(fields))


def test_non_json_is_refused():
    with pytest.raises(InvalidEvent):
        parse_event_json(b"{nope")
    with pytest.raises(InvalidEvent):
        parse_event_json(b"[]")

"""The connection's junk filter drops only what the intake would drop in silence anyway."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvm.errors import NostrError
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import parse_event, sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request
from dvm.protocol.intake import IntakeRules, open_request
from dvm.protocol.methods import Method
from dvm.protocol.prefilter import plausible_request

NOW = 1_800_000_000
DVM = Encryptor(SecretKey(bytes.fromhex("d0" * 32)), random.Random(1).randbytes)
CLIENT = Encryptor(SecretKey(bytes.fromhex("c0" * 32)), random.Random(2).randbytes)
RULES = IntakeRules(pow_bits=dict.fromkeys(Method, 4) | {Method.REQUEST_ACCOUNT: 8})
KIND = RULES.request_kind


def plausible(event: dict, rules: IntakeRules = RULES) -> bool:
    return plausible_request(event, DVM.key.pubkey_hex, rules.request_kind, rules.pow_gate_bits)


def good(pow_bits: int = 8, **kw) -> dict:
    params = {"email": "ana@example.org"}
    return build_request(
        CLIENT, DVM.key.pubkey_hex, "request_account", params, NOW, pow_bits=pow_bits, **kw
    ).to_dict()


def test_a_request_with_enough_pow_passes_and_zero_pow_junk_does_not():
    assert plausible(good())
    assert plausible(good(pow_bits=4))  # the lowest minimum: the method is still encrypted
    assert not plausible(good(pow_bits=0))
    assert not plausible(good(pow_bits=3))


def test_other_kinds_other_dvms_and_malformed_shapes_are_junk():
    assert not plausible(good(kind=KIND + 1))
    assert not plausible({**good(), "kind": str(KIND)})
    assert not plausible({**good(), "kind": True})
    other = build_request(CLIENT, "ab" * 32, "request_account", {"email": "a@b.org"}, NOW, pow_bits=8)
    assert not plausible(other.to_dict())
    assert not plausible({**good(), "tags": "p"})
    assert not plausible({**good(), "id": "00" * 31})
    assert not plausible({**good(), "id": None})


def test_a_claimed_id_or_commitment_below_the_minimum_is_junk_and_only_the_first_nonce_counts():
    event = good()
    nonce = next(t for t in event["tags"] if t[0] == "nonce")
    assert not plausible({**event, "id": "ff" + event["id"][2:]})  # claimed id without the zeros
    low = [t if t[0] != "nonce" else [t[0], t[1], "3"] for t in event["tags"]]
    assert not plausible({**event, "tags": low})
    assert not plausible({**event, "tags": [["nonce", "1"], *event["tags"]]})  # malformed first
    assert plausible({**event, "tags": [*event["tags"], ["nonce", "1", "0"]]})
    assert nonce[2] == "8"


def test_without_a_pow_minimum_anything_addressed_to_us_passes():
    free = IntakeRules(pow_bits=dict.fromkeys(Method, 0))
    assert plausible(good(pow_bits=0), free)
    assert not plausible(good(pow_bits=0, kind=KIND + 1), free)


tag = st.one_of(
    st.just(["p", DVM.key.pubkey_hex]),
    st.just(["p", "ab" * 32]),
    st.builds(
        lambda n, t: ["nonce", str(n), t],
        st.integers(0, 99),
        st.sampled_from(["0", "2", "4", "8", "x", "9999"]),
    ),
    st.just(["nonce", "1"]),
    st.just(["encrypted"]),
)


@settings(max_examples=200, deadline=None)
@given(tags=st.lists(tag, max_size=4), kind=st.sampled_from([KIND, KIND + 1, 1]), seed=st.integers(0, 2**32))
def test_whatever_it_drops_the_intake_drops_in_silence(tags, kind, seed):
    key = SecretKey(random.Random(seed).randbytes(32))
    content = Encryptor(key).encrypt(DVM.key.pubkey, '{"method":"status","params":{}}')
    event = sign_event(key, kind, content, NOW, [tuple(t) for t in tags]).to_dict()
    if not plausible(event):
        with pytest.raises(NostrError):
            open_request(parse_event(event), DVM, RULES, NOW)


def test_junk_it_drops_is_dropped_by_the_intake_too():
    for event in (good(pow_bits=0), good(kind=KIND + 1)):
        assert not plausible(event)
        with pytest.raises(NostrError):  # silence: InvalidEvent or InsufficientPow
            open_request(parse_event(event), DVM, RULES, NOW)

"""The edge (authentication, PoW, window, decryption, decoding) and reply events."""

from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest

from dvm.accounts.decision import Failure, Success
from dvm.errors import InsufficientPow, InvalidEvent, InvalidSignature, error_codes
from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import sign_event, verify_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request, open_reply
from dvm.protocol.intake import IntakeRules, open_request, paid_work
from dvm.protocol.methods import Method, RequestAccount
from dvm.protocol.replies import build_reply, reply_plaintext

NOW = 1_800_000_000
DVM = Encryptor(SecretKey(bytes.fromhex("d0" * 32)), random.Random(1).randbytes)
CLIENT = Encryptor(SecretKey(bytes.fromhex("c0" * 32)), random.Random(2).randbytes)
# Low PoW keeps the unit tests fast; the rule is the same at any difficulty.
RULES = IntakeRules(pow_bits=dict.fromkeys(Method, 4) | {Method.REQUEST_ACCOUNT: 8})


def request(method="request_account", params=None, *, pow_bits=8, created_at=NOW, **kw):
    params = {"email": "ana@example.org"} if params is None else params
    return build_request(CLIENT, DVM.key.pubkey_hex, method, params, created_at, pow_bits=pow_bits, **kw)


def test_a_good_request_is_authenticated_decrypted_and_typed():
    incoming = open_request(request(), DVM, RULES, NOW)
    assert incoming.refusal is None
    assert incoming.request == RequestAccount("ana@example.org")
    assert incoming.scheme is Scheme.NIP44


def test_nip04_requests_are_accepted_and_marked_for_a_nip04_answer():
    incoming = open_request(request(scheme=Scheme.NIP04), DVM, RULES, NOW)
    assert incoming.request == RequestAccount("ana@example.org")
    assert incoming.scheme is Scheme.NIP04


def test_events_for_other_kinds_or_other_dvms_are_dropped_silently():
    with pytest.raises(InvalidEvent):
        open_request(request(kind=5999), DVM, RULES, NOW)
    other = build_request(CLIENT, "ab" * 32, "request_account", {"email": "a@b.org"}, NOW, pow_bits=8)
    with pytest.raises(InvalidEvent):
        open_request(other, DVM, RULES, NOW)


def test_forged_events_are_dropped_silently_before_any_decryption():
    event = request()
    with pytest.raises(InvalidSignature):
        open_request(replace(event, sig="00" * 64), DVM, RULES, NOW)
    with pytest.raises(InvalidEvent, match="id"):
        open_request(replace(event, content="tampered"), DVM, RULES, NOW)


def test_without_real_work_not_even_the_signature_is_checked():
    """Cost before work, in order of cost: the id (a hash) and the PoW, then the signature (50-70 us)."""
    unsigned = replace(request(pow_bits=0), sig="00" * 64)
    with pytest.raises(InsufficientPow):  # not InvalidSignature: the signature was never looked at
        open_request(unsigned, DVM, RULES, NOW)
    assert paid_work(request(pow_bits=8), RULES) == 8
    with pytest.raises(InsufficientPow):
        paid_work(request(pow_bits=0), RULES)
    forged = request(pow_bits=8)
    with pytest.raises(InvalidEvent, match="id"):  # work claimed by an id that is not the event's
        paid_work(replace(forged, id="00" * 32), RULES)


def refusal(event, now=NOW, rules=RULES) -> str:
    incoming = open_request(event, DVM, rules, now)
    assert incoming.refusal is not None, incoming
    return incoming.refusal.code


def test_pow_below_the_gate_is_silence_and_below_the_method_minimum_is_pow_too_low():
    """Without real work a stranger costs nothing, not even a reply; with some, it is told."""
    with pytest.raises(InsufficientPow):
        open_request(request(pow_bits=0), DVM, RULES, NOW)
    # Passes the gate (4 bits) but not request_account's own minimum (8).
    assert refusal(request(pow_bits=5)) == "pow_too_low"


def test_a_request_whose_nip40_expiration_has_passed_is_silence():
    with pytest.raises(InvalidEvent, match="expired"):
        open_request(request(expiration_s=-1), DVM, RULES, NOW)
    assert open_request(request(expiration_s=60), DVM, RULES, NOW).refusal is None


def test_per_method_minimum_is_applied_after_decryption():
    # 4 bits is enough for verify_code (its own minimum) though not for request_account.
    incoming = open_request(request("verify_code", {"code": "123456"}, pow_bits=4), DVM, RULES, NOW)
    assert incoming.refusal is None
    tags = [("p", DVM.key.pubkey_hex), ("nonce", "0", "30")]  # claims 30 bits it does not have
    bogus = build_request(CLIENT, DVM.key.pubkey_hex, "verify_code", {"code": "123456"}, NOW, pow_bits=0)
    bogus = sign_event(CLIENT.key, bogus.kind, bogus.content, NOW, tags)
    with pytest.raises(InsufficientPow):  # its real bits miss its own claim: no work proven
        open_request(bogus, DVM, RULES, NOW)


def test_created_at_outside_the_window_is_stale():
    assert refusal(request(created_at=NOW - 601)) == "stale_event"
    assert refusal(request(created_at=NOW + 601)) == "stale_event"
    assert open_request(request(created_at=NOW - 600), DVM, RULES, NOW).refusal is None


def test_undecryptable_or_malformed_content_is_bad_request():
    key = CLIENT.key
    tags = nip13.mine(key.pubkey_hex, NOW, 5780, [("p", DVM.key.pubkey_hex)], "garbage", target=8)
    assert refusal(sign_event(key, 5780, "garbage", NOW, tags)) == "bad_request"
    assert refusal(request("no_such_method", {})) == "bad_request"
    assert refusal(request(params={"email": "not-an-email"})) == "invalid_email"


def test_reply_plaintexts():
    assert orjson.loads(reply_plaintext(Success())) == {"result": {}}
    assert reply_plaintext(Success(), empty_success=True) == ""
    assert orjson.loads(reply_plaintext(Success({"entropy": "ab"}))) == {"result": {"entropy": "ab"}}
    error = orjson.loads(reply_plaintext(Failure("rate_limited", "slow down", (("retry_after_s", 5),))))
    assert error == {"error": {"code": "rate_limited", "message": "slow down", "retry_after_s": 5}}


@pytest.mark.parametrize("scheme", list(Scheme))
def test_replies_are_signed_tagged_and_encrypted_to_the_requester_in_its_scheme(scheme):
    req = request(scheme=scheme)
    reply = build_reply(DVM, req, scheme, Success({"entropy": "ab"}), 6780, NOW, 3600)
    verify_event(reply)
    assert reply.kind == 6780 and reply.pubkey == DVM.key.pubkey_hex
    assert reply.tag_values("e") == [req.id] and reply.tag_values("p") == [req.pubkey]
    assert reply.tag_values("expiration") == [str(NOW + 3600)]
    assert reply.first_tag("encrypted") is not None
    assert Scheme.of(reply.content) is scheme
    opened = open_reply(CLIENT, reply, DVM.key.pubkey_hex)
    assert opened.result == {"entropy": "ab"} and opened.ok


@pytest.mark.parametrize("scheme", list(Scheme))
def test_success_and_every_error_look_the_same_on_the_wire(scheme):
    """An observer of the relay cannot tell an empty success from a refusal by length or tags."""
    replies = (
        [Success(), Success({"entropy": "ab" * 32})]
        + [Failure.of(cls()) for cls in error_codes().values()]
        + [Failure("code_invalid", "That code is not correct.", (("attempts_left", 4),))]
    )
    events = [build_reply(DVM, request(scheme=scheme), scheme, r, 6780, NOW, 3600) for r in replies]
    assert len({len(e.content) for e in events}) == 1
    assert len({tuple(t[0] for t in e.tags) for e in events}) == 1


def test_the_seeds_empty_success_is_an_operator_setting():
    reply = build_reply(DVM, request(), Scheme.NIP44, Success(), 6780, NOW, 3600, empty_success=True)
    assert reply.content == "" and reply.first_tag("encrypted") is None
    assert open_reply(CLIENT, reply, DVM.key.pubkey_hex).code == "ok"

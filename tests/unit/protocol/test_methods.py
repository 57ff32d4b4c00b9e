"""Strict decoding of request JSON into typed requests, and email normalisation."""

from __future__ import annotations

import orjson
import pytest

from dvm.errors import BadRequest, InvalidEmail, RequestError
from dvm.nostr import bech32
from dvm.nostr.keys import SecretKey
from dvm.protocol.email_address import normalise_email
from dvm.protocol.methods import (
    Activate,
    RequestAccount,
    RequestLimits,
    RequestLogin,
    ResendCode,
    VerifyCode,
    decode_request,
)

PUB = SecretKey(bytes.fromhex("01" * 32)).pubkey_hex
NCRYPTSEC = bech32.encode("ncryptsec", b"\x02" + bytes(90))


def req(method, **params) -> str:
    return orjson.dumps({"method": method, "params": params}).decode()


def test_each_method_decodes_to_its_typed_request():
    assert decode_request(req("request_account", email=" Ana@Example.ORG ")) == RequestAccount(
        "ana@example.org"
    )
    assert decode_request(req("request_login", email="ana@example.org")) == RequestLogin("ana@example.org")
    assert decode_request(req("verify_code", code="012345")) == VerifyCode("012345")
    assert decode_request(req("activate", pubkey=PUB, backup=NCRYPTSEC)) == Activate(PUB, NCRYPTSEC)
    assert decode_request(req("activate", pubkey=PUB, backup="YWJj")) == Activate(PUB, "YWJj")
    assert decode_request(req("resend_code")) == ResendCode()
    assert decode_request('{"method":"resend_code"}') == ResendCode()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '"x"',
        '{"method":"nope","params":{}}',
        '{"params":{}}',
        '{"method":5}',
        '{"method":"resend_code","params":[]}',
        '{"method":"resend_code","params":{},"extra":1}',
        req("request_account"),
        req("request_account", email="a@b.org", other=1),
        req("verify_code", code=123456),
        req("verify_code", code="12345"),
        req("verify_code", code="１２３４５６"),
        req("activate", pubkey="ff" * 32, backup="YWJj"),
        req("activate", pubkey=PUB.upper(), backup="YWJj"),
        req("activate", pubkey=PUB, backup=""),
        req("activate", pubkey=PUB, backup="not base64!"),
        req("activate", pubkey=PUB, backup=bech32.encode("ncryptsec", b"\x01" + bytes(90))),
        req("activate", pubkey=PUB, backup="ncryptsec1qqqq"),
        req("activate", pubkey=PUB, backup="A" * 4100),
        # A key twice: which value counts would be a guess two parsers may answer differently.
        '{"method":"request_account","method":"status","params":{}}',
        '{"method":"verify_code","params":{"code":"123456","code":"654321"}}',
        '{"method":"resend_code","params":{},"params":{}}',
        '{"method":"verify_code","params":{"code":NaN}}',
        '{"method":"request_account","params":{"email":"\\ud800@example.org"}}',
    ],
)
def test_malformed_requests_are_bad_request(text):
    with pytest.raises(BadRequest):
        decode_request(text)


def test_oversized_plaintext_is_refused_before_parsing():
    with pytest.raises(BadRequest, match="larger"):
        decode_request(" " * 20000, RequestLimits(max_plaintext_bytes=16384))


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  Ana@Example.ORG\n", "ana@example.org"),
        ("ana@exämple.org", "ana@xn--exmple-cua.org"),
        ("Ana.B+tag@Sub.Example.co.uk", "ana.b+tag@sub.example.co.uk"),
    ],
)
def test_emails_are_trimmed_lower_cased_and_idna_encoded(raw, normal):
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "@example.org",
        "ana@",
        "ana@localhost",
        "ana@exa mple.org",
        "a na@example.org",
        "ana@@example.org",
        "ana..b@example.org",
        ".ana@example.org",
        "ana@-example.org",
        "ana@example.123",
        "x" * 65 + "@example.org",
        "a@" + "b" * 250 + ".org",
        None,
        7,
    ],
)
def test_invalid_emails_are_refused(raw):
    with pytest.raises(InvalidEmail):
        normalise_email(raw)


def test_invalid_email_in_a_request_is_invalid_email_not_bad_request():
    with pytest.raises(RequestError) as info:
        decode_request(req("request_account", email="nope"))
    assert info.value.code == "invalid_email"


@pytest.mark.parametrize("method", ["request_account", "request_login", "change_email"])
def test_an_email_of_the_wrong_type_is_bad_request_and_an_over_long_one_invalid_email(method):
    for wrong in (5, None, ["a@b.org"], {"a": 1}):
        with pytest.raises(BadRequest):
            decode_request(orjson.dumps({"method": method, "params": {"email": wrong}}).decode())
    with pytest.raises(InvalidEmail):
        decode_request(
            orjson.dumps({"method": method, "params": {"email": "a" * 250 + "@example.org"}}).decode()
        )

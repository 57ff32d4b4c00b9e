"""Sealed requests: an account method carried by an ephemeral key, signed by the account key."""

from __future__ import annotations

import random

import orjson
import pytest

from dvm.nostr import nip13
from dvm.nostr.encryption import Encryptor
from dvm.nostr.event import sign_event
from dvm.nostr.keys import SecretKey
from dvm.protocol.client import build_request, request_plaintext, sealed_plaintext
from dvm.protocol.intake import IntakeRules, open_request
from dvm.protocol.methods import Method, Status, UpdateBackup

NOW = 1_800_000_000
DVM = Encryptor(SecretKey(bytes.fromhex("d0" * 32)), random.Random(1).randbytes)
EPHEMERAL = Encryptor(SecretKey(bytes.fromhex("c0" * 32)), random.Random(2).randbytes)
ACCOUNT = SecretKey(bytes.fromhex("a0" * 32))
RULES = IntakeRules(pow_bits=dict.fromkeys(Method, 4))


def carried(plaintext: str, client: Encryptor = EPHEMERAL):
    """An event from ``client`` whose decrypted content is ``plaintext`` exactly."""
    content = client.encrypt(bytes.fromhex(DVM.key.pubkey_hex), plaintext)
    tags = [("p", DVM.key.pubkey_hex), ("encrypted",)]
    tags = list(nip13.mine(client.key.pubkey_hex, NOW, 5780, tags, content, target=4))
    return sign_event(client.key, 5780, content, NOW, tags)


def test_a_sealed_account_method_names_the_account_key_as_its_signer():
    event = build_request(
        EPHEMERAL, DVM.key.pubkey_hex, "update_backup", {"backup": "QUJD"}, NOW, pow_bits=4, seal=ACCOUNT
    )
    incoming = open_request(event, DVM, RULES, NOW)
    assert incoming.refusal is None
    assert incoming.request == UpdateBackup("QUJD")
    assert incoming.signer == ACCOUNT.pubkey_hex
    assert event.pubkey == EPHEMERAL.key.pubkey_hex != ACCOUNT.pubkey_hex


def test_an_unsealed_request_has_no_signer():
    event = build_request(EPHEMERAL, DVM.key.pubkey_hex, "status", {}, NOW, pow_bits=4)
    incoming = open_request(event, DVM, RULES, NOW)
    assert (incoming.request, incoming.signer) == (Status(), None)


def seal_with(*, kind=13, tags=None, created_at=NOW, content=None, key=ACCOUNT):
    tags = [("p", DVM.key.pubkey_hex), ("client", EPHEMERAL.key.pubkey_hex)] if tags is None else tags
    content = request_plaintext("status", {}) if content is None else content
    return orjson.dumps({"seal": sign_event(key, kind, content, created_at, tags).to_dict()}).decode()


@pytest.mark.parametrize(
    ("plaintext", "code"),
    [
        (seal_with(kind=1), "bad_request"),
        (seal_with(tags=[("p", DVM.key.pubkey_hex)]), "bad_request"),  # bound to no client
        (seal_with(tags=[("p", DVM.key.pubkey_hex), ("client", "ab" * 32)]), "bad_request"),  # another's
        (
            seal_with(tags=[("p", "ab" * 32), ("client", EPHEMERAL.key.pubkey_hex)]),
            "bad_request",
        ),  # other DVM
        (seal_with(created_at=NOW - 3600), "stale_event"),
        (seal_with(content=request_plaintext("request_account", {"email": "a@b.org"})), "bad_request"),
        (seal_with(content=orjson.dumps({"seal": {}}).decode()), "bad_request"),  # nested
        (seal_with()[:-1] + ', "method": "status"}', "bad_request"),  # seal plus other members
        (seal_with().replace('"sig":"', '"sig":"00'), "bad_request"),  # forged
    ],
    ids=[
        "kind",
        "no client",
        "other client",
        "other dvm",
        "stale",
        "signup method",
        "nested",
        "extra",
        "forged",
    ],
)
def test_a_bad_seal_is_refused_with_a_code(plaintext, code):
    incoming = open_request(carried(plaintext), DVM, RULES, NOW)
    assert incoming.refusal is not None and incoming.refusal.code == code


def test_a_seal_carried_by_another_key_is_refused():
    other = Encryptor(SecretKey(bytes.fromhex("c1" * 32)), random.Random(3).randbytes)
    plaintext = sealed_plaintext(ACCOUNT, DVM.key.pubkey_hex, EPHEMERAL.key.pubkey_hex, "status", {}, NOW)
    incoming = open_request(carried(plaintext, other), DVM, RULES, NOW)
    assert incoming.refusal is not None and incoming.refusal.code == "bad_request"

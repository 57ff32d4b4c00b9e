"""Every section of the official NIP-44 v2 vectors, valid and invalid."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dvm.errors import DecryptionError, InvalidKey, PayloadSize
from dvm.nostr import nip44
from dvm.nostr.keys import SecretKey, validate_pubkey
from tests.vectors_path import SHARED, VENDORED, nip44_vectors_file

V2: dict[str, Any] = json.loads(nip44_vectors_file().read_text())["v2"]
VALID, INVALID = V2["valid"], V2["invalid"]


def test_vendored_copy_is_identical_to_shared_vectors():
    if not SHARED.exists():
        pytest.skip("../shared/vectors is not beside this checkout")
    assert VENDORED.read_bytes() == SHARED.read_bytes()


@pytest.mark.parametrize("case", VALID["get_conversation_key"])
def test_conversation_key_matches_vector(case):
    shared_x = SecretKey(bytes.fromhex(case["sec1"])).shared_x(bytes.fromhex(case["pub2"]))
    assert nip44.conversation_key(shared_x).hex() == case["conversation_key"]


@pytest.mark.parametrize("case", VALID["get_message_keys"]["keys"])
def test_message_keys_match_vector(case):
    conv = bytes.fromhex(VALID["get_message_keys"]["conversation_key"])
    chacha_key, chacha_nonce, hmac_key = nip44.message_keys(conv, bytes.fromhex(case["nonce"]))
    assert (chacha_key.hex(), chacha_nonce.hex(), hmac_key.hex()) == (
        case["chacha_key"],
        case["chacha_nonce"],
        case["hmac_key"],
    )


@pytest.mark.parametrize(("unpadded", "padded"), VALID["calc_padded_len"])
def test_padded_length_matches_vector(unpadded, padded):
    assert nip44.calc_padded_len(unpadded) == padded


@pytest.mark.parametrize("case", VALID["encrypt_decrypt"])
def test_encrypt_and_decrypt_match_vector(case):
    key1, key2 = SecretKey(bytes.fromhex(case["sec1"])), SecretKey(bytes.fromhex(case["sec2"]))
    conv = nip44.conversation_key(key1.shared_x(key2.pubkey))
    assert conv.hex() == case["conversation_key"]
    assert nip44.conversation_key(key2.shared_x(key1.pubkey)) == conv
    assert nip44.encrypt(case["plaintext"], conv, bytes.fromhex(case["nonce"])) == case["payload"]
    assert nip44.decrypt(case["payload"], conv) == case["plaintext"]


@pytest.mark.parametrize("case", VALID["encrypt_decrypt_long_msg"])
def test_long_messages_match_vector(case):
    plaintext = case["pattern"] * case["repeat"]
    assert hashlib.sha256(plaintext.encode()).hexdigest() == case["plaintext_sha256"]
    conv = bytes.fromhex(case["conversation_key"])
    payload = nip44.encrypt(plaintext, conv, bytes.fromhex(case["nonce"]))
    assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
    assert nip44.decrypt(payload, conv) == plaintext


@pytest.mark.parametrize("length", INVALID["encrypt_msg_lengths"])
def test_invalid_plaintext_lengths_are_refused(length):
    with pytest.raises(PayloadSize):
        nip44.pad(b"a" * length)


@pytest.mark.parametrize("case", INVALID["get_conversation_key"], ids=lambda c: c["note"])
def test_invalid_keys_are_refused(case):
    with pytest.raises(InvalidKey):
        validate_pubkey(bytes.fromhex(case["pub2"]))
        SecretKey(bytes.fromhex(case["sec1"])).shared_x(bytes.fromhex(case["pub2"]))


@pytest.mark.parametrize("case", INVALID["decrypt"], ids=lambda c: c["note"])
def test_invalid_payloads_are_refused(case):
    with pytest.raises(DecryptionError):
        nip44.decrypt(case["payload"], bytes.fromhex(case["conversation_key"]))

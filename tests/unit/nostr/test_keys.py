"""Keys, BIP-340 signing and raw-x ECDH against coincurve and cryptography."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from cryptography.hazmat.primitives.asymmetric import ec

from dvm.errors import InvalidKey
from dvm.nostr.keys import SecretKey, parse_pubkey_hex, verify_schnorr

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_signature_verifies_with_coincurve_and_here():
    key = SecretKey(bytes.fromhex("03" * 32))
    message = bytes(range(32))
    signature = key.sign(message)
    assert PublicKeyXOnly(key.pubkey).verify(signature, message)
    assert verify_schnorr(key.pubkey, message, signature)
    assert not verify_schnorr(key.pubkey, bytes(32), signature)
    assert key.pubkey == PrivateKey(bytes.fromhex("03" * 32)).public_key_xonly.format()


def test_shared_x_is_the_unhashed_x_coordinate_cryptography_computes():
    ours, theirs = SecretKey(bytes.fromhex("05" * 32)), SecretKey(bytes.fromhex("07" * 32))
    priv = ec.derive_private_key(int.from_bytes(bytes.fromhex("05" * 32), "big"), ec.SECP256K1())
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x02" + theirs.pubkey)
    assert ours.shared_x(theirs.pubkey) == priv.exchange(ec.ECDH(), peer)
    assert ours.shared_x(theirs.pubkey) == theirs.shared_x(ours.pubkey)


@pytest.mark.parametrize("secret", [bytes(32), N.to_bytes(32, "big"), b"\x01" * 31, b"\xff" * 32])
def test_invalid_secrets_are_refused(secret):
    with pytest.raises(InvalidKey):
        SecretKey(secret)


@pytest.mark.parametrize("value", ["ab", "AB" * 32, "ff" * 32, None, "g" * 64])
def test_invalid_public_keys_are_refused(value):
    with pytest.raises(InvalidKey):
        parse_pubkey_hex(value)


def test_repr_never_shows_the_secret():
    key = SecretKey(bytes.fromhex("09" * 32))
    assert "09" * 32 not in repr(key)
    assert key.pubkey_hex in repr(key)


def test_generate_uses_the_injected_rng():
    draws = iter([bytes(32), b"\x01" * 32])
    key = SecretKey.generate(lambda n: next(draws))
    assert key.secret_bytes() == b"\x01" * 32

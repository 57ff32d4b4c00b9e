"""Cross-checks against rust-nostr (``nostr-sdk``), an independent implementation."""

from __future__ import annotations

import nostr_sdk as rn
import pytest

from dvm.nostr import bech32, nip13
from dvm.nostr.encryption import Encryptor, Scheme
from dvm.nostr.event import parse_event_json, sign_event, verify_event
from dvm.nostr.keys import SecretKey

OURS = SecretKey(bytes.fromhex("1f" * 32))
THEIR_SECRET = "2e" * 32
THEIR_PUB = SecretKey(bytes.fromhex(THEIR_SECRET)).pubkey
ENC = Encryptor(OURS)
# rust-nostr caps NIP-44 plaintext at 65408 bytes (the vectors allow 65535; our own tests go there).
RUST_MAX = 65408
MESSAGES = [
    "a",
    "multi-byte: é ü 漢字 😀 \u2028",
    '{"method":"request_account","email":"ana@example.org"}',
    "x" * RUST_MAX,
    "€" * (RUST_MAX // 3),
]


@pytest.fixture(scope="module")
def rust_keys():
    """rust-nostr objects live in fixtures: freed at teardown, not at interpreter exit."""
    keys = rn.Keys.parse(THEIR_SECRET)
    yield keys, rn.PublicKey.parse(OURS.pubkey_hex)
    del keys


def test_events_we_sign_verify_in_rust_nostr_with_the_same_id():
    event = sign_event(OURS, 5700, 'héllo \n "quoted" 😀', 1700000000, [["p", "ab" * 32], ["encrypted"]])
    theirs = rn.Event.from_json(event.to_json())
    assert theirs.verify()
    assert theirs.id().to_hex() == event.id


def test_events_rust_nostr_signs_verify_here_with_the_same_id(rust_keys):
    their_keys, _our_pub = rust_keys
    built = (
        rn.EventBuilder(rn.Kind(5700), "ünïcode \t and \\ escapes 🎉")
        .tags([rn.Tag.parse(["p", OURS.pubkey_hex]), rn.Tag.parse(["encrypted"])])
        .finalize_unsigned(their_keys.public_key())
        .sign(their_keys)
    )
    event = parse_event_json(built.as_json())
    assert verify_event(event).hex() == built.id().to_hex()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{len(m.encode())}B")
def test_nip44_payloads_decrypt_on_the_other_side(message, rust_keys):
    their_keys, our_pub = rust_keys
    ours = ENC.encrypt(THEIR_PUB, message, Scheme.NIP44)
    assert rn.nip44_decrypt(their_keys.secret_key(), our_pub, ours) == message
    theirs = rn.nip44_encrypt(their_keys.secret_key(), our_pub, message, rn.Nip44Version.V2)
    assert ENC.decrypt(THEIR_PUB, theirs) == (message, Scheme.NIP44)


@pytest.mark.parametrize("message", [*MESSAGES[:3], "y" * 65535], ids=lambda m: f"{len(m.encode())}B")
def test_nip04_payloads_decrypt_on_the_other_side(message, rust_keys):
    their_keys, our_pub = rust_keys
    ours = ENC.encrypt(THEIR_PUB, message, Scheme.NIP04)
    assert rn.nip04_decrypt(their_keys.secret_key(), our_pub, ours) == message
    theirs = rn.nip04_encrypt(their_keys.secret_key(), our_pub, message)
    assert ENC.decrypt(THEIR_PUB, theirs) == (message, Scheme.NIP04)


def test_pow_mined_by_rust_nostr_passes_at_its_committed_target(rust_keys):
    their_keys, _our_pub = rust_keys
    unsigned = rn.EventBuilder(rn.Kind(5700), "x").finalize_unsigned(their_keys.public_key())
    mined = unsigned.mine(rn.MultiThreadPow(), 14).sign(their_keys)
    event = parse_event_json(mined.as_json())
    event_id = verify_event(event)
    assert nip13.check_pow(event_id, event.tags, 14) >= 14
    assert nip13.leading_zero_bits(event_id) == rn.get_leading_zero_bits(event_id)


def test_pow_we_mine_is_counted_the_same_by_rust_nostr():
    tags = nip13.mine(OURS.pubkey_hex, 1700000000, 5700, [], "x", target=12)
    event = sign_event(OURS, 5700, "x", 1700000000, tags)
    assert rn.get_leading_zero_bits(bytes.fromhex(event.id)) >= 12
    assert rn.Event.from_json(event.to_json()).verify()


def test_bech32_agrees_with_rust_nostr(rust_keys):
    their_keys, our_pub = rust_keys
    assert bech32.npub(OURS.pubkey) == our_pub.to_bech32()
    assert bech32.nsec(OURS.secret_bytes()) == rn.SecretKey.from_bytes(OURS.secret_bytes()).to_bech32()
    ncryptsec = their_keys.secret_key().encrypt("correct horse").to_bech32()
    assert len(bech32.check_ncryptsec(ncryptsec)) == 91

"""NIP-13 proof of work and NIP-19/NIP-49 bech32 strings."""

from __future__ import annotations

import pytest

from dvm.errors import EncodingError, InsufficientPow
from dvm.nostr import bech32, nip13
from dvm.nostr.event import compute_id


@pytest.mark.parametrize(
    ("hex_id", "bits"),
    [
        ("ff" + "00" * 31, 0),
        ("00" * 32, 256),
        ("0f" + "ff" * 31, 4),
        ("000000ff" + "00" * 28, 24),
        ("00000001" + "00" * 28, 31),
    ],
)
def test_leading_zero_bits_counts_bits_not_hex_characters(hex_id, bits):
    assert nip13.leading_zero_bits(bytes.fromhex(hex_id)) == bits


def test_mined_event_passes_at_its_committed_target():
    tags = nip13.mine("ab" * 32, 1700000000, 5700, [["p", "cd" * 32]], "x", target=10)
    event_id = compute_id("ab" * 32, 1700000000, 5700, tags, "x")
    assert nip13.check_pow(event_id, tags, 10) >= 10
    assert tags[-1][0] == "nonce" and tags[-1][2] == "10"


def test_pow_refusals_name_their_reason():
    lucky = bytes(4) + b"\xff" * 28  # 32 real bits
    with pytest.raises(InsufficientPow, match="nonce tag"):
        nip13.check_pow(lucky, [], 16)
    with pytest.raises(InsufficientPow, match="committed target 8"):
        nip13.check_pow(lucky, [["nonce", "1", "8"]], 16)
    with pytest.raises(InsufficientPow, match="less than its committed"):
        nip13.check_pow(b"\x00\xff" + bytes(30), [["nonce", "1", "20"]], 16)
    for bad_target in ("x", "-1", "", "9999", "١٦"):
        with pytest.raises(InsufficientPow):
            nip13.check_pow(lucky, [["nonce", "1", bad_target]], 16)
    assert nip13.check_pow(b"\xff" * 32, [], 0) == 0


def test_npub_matches_nip19_example():
    # NIP-19's published example pair.
    pub = bytes.fromhex("7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e")
    npub = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
    assert bech32.npub(pub) == npub
    assert bech32.decode_npub(npub) == pub


def test_bech32_refusals():
    pub = bytes(32)
    with pytest.raises(EncodingError, match="prefix"):
        bech32.decode_npub(bech32.nsec(pub))
    with pytest.raises(EncodingError):
        bech32.decode_npub(bech32.npub(pub)[:-1] + "q")
    with pytest.raises(EncodingError):
        bech32.decode_npub(bech32.encode("npub", bytes(31)))


def test_ncryptsec_of_162_characters_is_accepted():
    # NIP-49's published example.
    value = (
        "ncryptsec1qgg9947rlpvqu76pj5ecreduf9jxhselq2nae2kghhvd5g7dgjtcxfqtd67p9m0w57lspw8gsq6yphnm8623nsl8"
        "xn9j4jdzz84zm3frztj3z7s35vpzmqf6ksu8r89qk5z2zxfmu5gv8th8wclt0h4p"
    )
    assert len(value) == 162
    assert len(bech32.check_ncryptsec(value)) == 91
    with pytest.raises(EncodingError):
        bech32.check_ncryptsec(bech32.encode("ncryptsec", b"\x01" + bytes(90)))

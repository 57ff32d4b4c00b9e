"""Microseconds per operation of our Nostr layer next to the bare library calls, in one run.

The ratio column is ours / bare: the overhead our wrappers add over the library doing the same
work. Run through ``scripts/bench crypto`` (or ``--json`` for machine-readable output).
Environment: SIGIT_BENCH_BUDGET_S (default 0.4: seconds of timing per operation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import timeit
from collections.abc import Callable

from coincurve import PrivateKey, PublicKeyXOnly
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from dvm.nostr import nip44
from dvm.nostr.event import compute_id
from dvm.nostr.keys import SecretKey, verify_schnorr

BUDGET_S = float(os.environ.get("SIGIT_BENCH_BUDGET_S", "0.4"))


def per_op_us(fn: Callable[[], object], budget_s: float = BUDGET_S) -> float:
    """Best of five timings, each sized to about budget_s / 5."""
    timer = timeit.Timer(fn)
    estimate_s = timer.timeit(20) / 20
    number = max(1, int(budget_s / 5 / max(estimate_s, 1e-9)))
    return min(timer.repeat(5, number)) / number * 1e6


def main() -> None:
    secret = bytes.fromhex("3c" * 32)
    ours = SecretKey(secret)
    peer = SecretKey(bytes.fromhex("4d" * 32))
    msg = hashlib.sha256(b"m").digest()
    sig = ours.sign(msg)
    raw_priv = PrivateKey(secret)
    raw_xonly = PublicKeyXOnly(ours.pubkey)
    crypt_priv = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256K1())
    crypt_peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x02" + peer.pubkey)
    conv = nip44.conversation_key(ours.shared_x(peer.pubkey))
    nonce = bytes(range(32))
    text = json.dumps({"method": "verify", "params": {"code": "123456"}})
    payload = nip44.encrypt(text, conv, nonce)
    tags = [["p", "ab" * 32], ["encrypted"], ["nonce", "12345", "16"]]

    def bare_nip44_encrypt() -> bytes:
        keys = HKDFExpand(hashes.SHA256(), 76, nonce).derive(conv)
        padded = nip44.pad(text.encode())
        ct = Cipher(algorithms.ChaCha20(keys[:32], bytes(4) + keys[32:44]), None).encryptor().update(padded)
        return hmac.digest(keys[44:], nonce + ct, "sha256")

    def bare_id() -> bytes:
        data = [0, ours.pubkey_hex, 1700000000, 5700, tags, payload]
        return hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()).digest()

    rows = [
        (
            "verify (BIP-340)",
            lambda: verify_schnorr(ours.pubkey, msg, sig),
            "coincurve xonly.verify",
            lambda: PublicKeyXOnly(ours.pubkey).verify(sig, msg),
        ),
        (
            "verify, parsed key reused",
            lambda: verify_schnorr(ours.pubkey, msg, sig),
            "coincurve xonly.verify (key reused)",
            lambda: raw_xonly.verify(sig, msg),
        ),
        (
            "sign (BIP-340)",
            lambda: ours.sign(msg),
            "coincurve sign_schnorr",
            lambda: raw_priv.sign_schnorr(msg),
        ),
        (
            "ECDH raw x (constant time)",
            lambda: ours.shared_x(peer.pubkey),
            "cryptography ECDH exchange",
            lambda: crypt_priv.exchange(ec.ECDH(), crypt_peer),
        ),
        (
            "NIP-44 encrypt",
            lambda: nip44.encrypt(text, conv, nonce),
            "HKDF+ChaCha20+HMAC bare",
            bare_nip44_encrypt,
        ),
        (
            "NIP-44 decrypt",
            lambda: nip44.decrypt(payload, conv),
            "HKDF+ChaCha20+HMAC bare",
            bare_nip44_encrypt,
        ),
        (
            "event id (orjson)",
            lambda: compute_id(ours.pubkey_hex, 1700000000, 5700, tags, payload),
            "sha256(json.dumps)",
            bare_id,
        ),
    ]
    results = []
    for name, fn, bare_name, bare in rows:
        ours_us, bare_us = per_op_us(fn), per_op_us(bare)
        results.append(
            {
                "op": name,
                "ours_us": round(ours_us, 2),
                "bare": bare_name,
                "bare_us": round(bare_us, 2),
                "ratio": round(ours_us / bare_us, 2),
            }
        )
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    print(f"{'operation':30} {'ours us':>9}  {'bare call':36} {'bare us':>9} {'ratio':>6}")
    for r in results:
        print(f"{r['op']:30} {r['ours_us']:9.2f}  {r['bare']:36} {r['bare_us']:9.2f} {r['ratio']:6.2f}")


if __name__ == "__main__":
    main()

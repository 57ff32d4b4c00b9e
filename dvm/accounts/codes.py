"""Emailed codes: drawn without modulo bias, stored only as a keyed HMAC.

A code proves control of a mailbox for one kind of proof (signup, login, email change,
deletion): its HMAC binds the digits to that kind under the server secret, so a leaked database
cannot be brute-forced offline without the secret, and a login code never confirms a deletion.
Codes are six digits; while a mailbox is being guessed at they are sixteen (``LONG_DIGITS``),
which no guessing at any rate the service can answer reaches.
"""

from __future__ import annotations

import hashlib
import hmac

from dvm.nostr.keys import Rng

CODE_DIGITS = 6
LONG_DIGITS = 16
_SPACE = 10**CODE_DIGITS
_LIMIT = (2**32 // _SPACE) * _SPACE  # largest multiple of 10**6 below 2**32: rejection bound


def new_code(rng: Rng, digits: int = CODE_DIGITS) -> str:
    """A uniformly random string of ``digits`` decimal digits (leading zeros kept), drawn six
    digits at a time."""
    parts = []
    for _ in range(-(-digits // CODE_DIGITS)):
        while True:
            value = int.from_bytes(rng(4), "big")
            if value < _LIMIT:
                parts.append(f"{value % _SPACE:0{CODE_DIGITS}d}")
                break
    return "".join(parts)[:digits]


def code_hmac(secret: bytes, kind: str, code: str) -> str:
    """Hex HMAC-SHA256 of ``kind:code`` under the server secret: what a code row stores."""
    return hmac.digest(secret, f"{kind}:{code}".encode(), hashlib.sha256).hex()


def session_code_hmac(secret: bytes, session_pubkey: str, code: str) -> str:
    """The HMAC of a code of an older version, which belonged to one session key."""
    return hmac.digest(secret, f"{session_pubkey}:{code}".encode(), hashlib.sha256).hex()


def same_hmac(computed: str, stored: str) -> bool:
    """Constant-time comparison of a submitted code's HMAC with a stored one."""
    return bool(stored) and hmac.compare_digest(computed, stored)


def new_token(rng: Rng, nbytes: int = 32) -> str:
    """A random hex identifier (user ids, entropy)."""
    return rng(nbytes).hex()

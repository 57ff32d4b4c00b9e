"""Six-digit email codes: drawn without modulo bias, stored only as a keyed HMAC.

The HMAC binds the code to its session key, so a code is useless in any other session, and a
leaked database cannot be brute-forced offline without the server secret.
"""

from __future__ import annotations

import hashlib
import hmac

from dvm.nostr.keys import Rng

CODE_DIGITS = 6
_SPACE = 10**CODE_DIGITS
_LIMIT = (2**32 // _SPACE) * _SPACE  # largest multiple of 10**6 below 2**32: rejection bound


def new_code(rng: Rng) -> str:
    """A uniformly random six-digit string (leading zeros kept)."""
    while True:
        value = int.from_bytes(rng(4), "big")
        if value < _LIMIT:
            return f"{value % _SPACE:0{CODE_DIGITS}d}"


def code_hmac(secret: bytes, session_pubkey: str, code: str) -> str:
    """Hex HMAC-SHA256 of ``pubkey:code`` under the server secret."""
    return hmac.new(secret, f"{session_pubkey}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(secret: bytes, session_pubkey: str, code: str, stored: str) -> bool:
    """Constant-time comparison of a submitted code with the stored HMAC."""
    if not stored:
        return False
    return hmac.compare_digest(code_hmac(secret, session_pubkey, code), stored)


def new_token(rng: Rng, nbytes: int = 32) -> str:
    """A random hex identifier (user ids, entropy)."""
    return rng(nbytes).hex()

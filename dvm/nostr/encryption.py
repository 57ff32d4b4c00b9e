"""Content encryption between our key and a peer: NIP-44 v2, or NIP-04 for old clients.

A payload containing ``?iv=`` is NIP-04, anything else NIP-44 v2; replies use the scheme of the
request. The peer key is always the event's own ``pubkey`` (callers pass it; nothing here reads
tags or content to find a key). Per-peer secrets are cached: ECDH dominates the cost of a
request, and a client usually sends several requests from one key.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections import OrderedDict

from dvm.nostr import nip04, nip44
from dvm.nostr.keys import Rng, SecretKey


class Scheme(enum.Enum):
    """The encryption scheme of a payload."""

    NIP44 = "nip44"
    NIP04 = "nip04"

    @classmethod
    def of(cls, payload: str) -> Scheme:
        return cls.NIP04 if nip04.SEPARATOR in payload else cls.NIP44


class Encryptor:
    """Encrypts to and decrypts from peers of one secret key, with a bounded LRU of peer secrets."""

    def __init__(self, key: SecretKey, rng: Rng = os.urandom, cache_size: int = 4096) -> None:
        self.key = key
        self._rng = rng
        self._cache_size = cache_size
        self._shared: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()

    def _secrets(self, peer: bytes) -> tuple[bytes, bytes]:
        """``(shared_x, nip44_conversation_key)`` for a peer, computed once per cache life."""
        cached = self._shared.get(peer)
        if cached is not None:
            # The PostgreSQL store commits on its own thread: the entry may be evicted meanwhile.
            with contextlib.suppress(KeyError):
                self._shared.move_to_end(peer)
            return cached
        shared_x = self.key.shared_x(peer)
        pair = (shared_x, nip44.conversation_key(shared_x))
        self._shared[peer] = pair
        if len(self._shared) > self._cache_size:
            self._shared.popitem(last=False)
        return pair

    def conversation_key(self, peer: bytes) -> bytes:
        return self._secrets(peer)[1]

    def peer_secrets(self, peer: bytes) -> tuple[bytes, bytes]:
        """``(shared_x, conversation_key)``: what another ``Encryptor`` of the same key may
        ``remember`` instead of redoing the ECDH (the opening worker hands them to the daemon)."""
        return self._secrets(peer)

    def remember(self, peer: bytes, secrets: tuple[bytes, bytes]) -> None:
        """Cache secrets computed for ``peer`` by another ``Encryptor`` of this same key."""
        if peer not in self._shared:
            self._shared[peer] = secrets
            if len(self._shared) > self._cache_size:
                self._shared.popitem(last=False)

    @property
    def cached_peers(self) -> int:
        """How many peers' secrets are cached (at most ``cache_size``)."""
        return len(self._shared)

    def encrypt(self, peer: bytes, plaintext: str, scheme: Scheme = Scheme.NIP44) -> str:
        shared_x, conv_key = self._secrets(peer)
        if scheme is Scheme.NIP04:
            return nip04.encrypt(plaintext, shared_x, self._rng(16))
        return nip44.encrypt(plaintext, conv_key, self._rng(32))

    def decrypt(self, peer: bytes, payload: str) -> tuple[str, Scheme]:
        """Decrypt ``payload`` from ``peer``; return the text and the scheme it used."""
        scheme = Scheme.of(payload)
        shared_x, conv_key = self._secrets(peer)
        if scheme is Scheme.NIP04:
            return nip04.decrypt(payload, shared_x), scheme
        return nip44.decrypt(payload, conv_key), scheme

"""Pure Nostr primitives: NIP-01 events, BIP-340, NIP-44 v2, NIP-04, NIP-13, NIP-19.

No sockets, no clock, no database. Randomness (signing aux data, encryption nonces) is drawn from
an injectable ``rng`` that defaults to the OS CSPRNG, so tests can pin it to the official vectors.
"""

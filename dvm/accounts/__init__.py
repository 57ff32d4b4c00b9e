"""The account state machine: pure decisions over rows, a request, ``now`` and an ``rng``."""

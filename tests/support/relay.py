"""The tests use the demo's relay launcher: one implementation of 'a local nostr-relay'."""

from dvm.demo.relay import LocalRelay, free_port, wait_until

__all__ = ["LocalRelay", "free_port", "wait_until"]

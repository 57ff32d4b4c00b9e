"""The wire protocol (docs/protocol.md): events in, typed requests; decisions in, reply events."""

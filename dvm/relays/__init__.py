"""Relay connections: subscribe, reconnect with backoff, authenticate, publish with OK tracking."""

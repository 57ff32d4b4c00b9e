"""Relay text reaches the logs escaped: a relay cannot forge a log line."""

from __future__ import annotations

from dvm.relays.messages import shown


def test_relay_text_is_cut_and_its_control_characters_escaped():
    forged = "rate-limited: slow down\n2026-12-01 12:00:00 INFO sigit.daemon: request ok\x1b[2J\u202e"
    text = shown(forged)
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.startswith("rate-limited: slow down\\n2026")
    assert len(shown("x" * 1000)) == 200
    assert shown("plain text") == "plain text"

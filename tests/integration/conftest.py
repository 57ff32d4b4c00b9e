"""Real services for integration tests: a nostr-relay and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.support.relay import LocalRelay
from tests.support.smtp import Catcher, start_smtp


@pytest.fixture
def relay(tmp_path):
    relay = LocalRelay(tmp_path / "relay-a").start()
    yield relay
    relay.stop()


@pytest.fixture
def smtp():
    """The aiosmtpd catcher (``.messages``, ``.refuse``) with its ``.port``."""
    catcher = Catcher()
    controller = start_smtp(catcher)
    catcher.port = controller.port
    yield catcher
    controller.stop()

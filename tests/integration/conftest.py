"""Real services for integration tests: a nostr-relay and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.support.admin_world import world  # noqa: F401 (the admin CLI's database)
from tests.support.relay import LocalRelay
from tests.support.smtp import Catcher, start_smtp


@pytest.fixture
def relay(tmp_path, request):
    """nostr-relay on its default storage; ``@pytest.mark.parametrize("relay", [...], indirect=True)``
    picks another ("lmdb", the benchmarks' relay)."""
    relay = LocalRelay(tmp_path / "relay-a", storage=getattr(request, "param", "sqlite")).start()
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

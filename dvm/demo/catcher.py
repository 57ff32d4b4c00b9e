"""A mail catcher for the demo: an aiosmtpd server on 127.0.0.1 that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from dvm.demo.relay import free_port


class MailCatcher:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._arrived:
            self.messages.append(message)  # type: ignore[arg-type,unused-ignore]
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout_s: float = 30.0) -> EmailMessage:
        """Block until ``count`` messages have arrived; return the newest."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout_s):
                raise TimeoutError(f"only {len(self.messages)} of {count} emails arrived")
            return self.messages[count - 1]

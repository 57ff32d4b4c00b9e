"""systemd integration without a C dependency: sd_notify over ``$NOTIFY_SOCKET`` and the watchdog.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

from dvm.nostr.encoding import is_digits


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        self._address = address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watched = is_digits(usec) and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if watched else None

    def notify(self, *lines: str) -> None:
        """Send ``KEY=value`` lines (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1)."""
        if not self._address:
            return
        # systemd gone or the socket unavailable: never fatal to the service.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto("\n".join(lines).encode(), self._address)

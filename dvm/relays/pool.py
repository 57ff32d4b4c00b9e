"""All configured relays: start and stop connections as the list changes, publish to all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from dvm.nostr.event import Event
from dvm.relays.connection import PublishResult, RelayConnection

log = logging.getLogger("sigit.relays")


class RelayPool:
    def __init__(self, factory: Callable[[str], RelayConnection]) -> None:
        self._factory = factory
        self.connections: dict[str, RelayConnection] = {}

    @property
    def urls(self) -> list[str]:
        return list(self.connections)

    @property
    def connected(self) -> list[str]:
        return [url for url, conn in self.connections.items() if conn.connected.is_set()]

    async def update(self, urls: Iterable[str]) -> tuple[list[str], list[str]]:
        """Connect to new relays and close removed ones; return (added, removed)."""
        wanted = list(dict.fromkeys(urls))
        removed = [url for url in self.connections if url not in wanted]
        added = [url for url in wanted if url not in self.connections]
        for url in removed:
            await self.connections.pop(url).close()
        for url in added:
            conn = self._factory(url)
            self.connections[url] = conn
            conn.start()
        if added or removed:
            log.info("relays: +%s -%s", added, removed)
        return added, removed

    async def publish(self, event: Event) -> list[PublishResult]:
        return await self.publish_raw(event.id, event.to_json())

    async def publish_raw(self, event_id: str, event_json: str) -> list[PublishResult]:
        conns = list(self.connections.values())
        return list(await asyncio.gather(*(c.publish_raw(event_id, event_json) for c in conns)))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections.values()))
        self.connections.clear()

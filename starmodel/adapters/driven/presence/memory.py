"""The presence tracker of one process: viewers in a dict, each connection with an expiry."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from starmodel.core.presence import PresenceTracker, Viewer

__all__ = ["MemoryPresenceTracker"]


class MemoryPresenceTracker(PresenceTracker):
    """Viewers of this process only (no Redis): the zero-config default.

    Args:
        clock: seconds now (``time.time``); tests pass one they move by hand.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._topics: dict[str, dict[str, tuple[float, Viewer]]] = {}  # topic -> conn -> (expires, viewer)

    async def update(
        self,
        joined: Mapping[str, Mapping[str, Viewer]],
        left: Mapping[str, Collection[str]],
        ttl: float,
    ) -> None:
        expires = self.clock() + ttl
        for topic, connections in joined.items():
            members = self._topics.setdefault(topic, {})
            for connection, viewer in connections.items():
                members[connection] = (expires, viewer)
        for topic, gone in left.items():
            remaining = self._topics.get(topic)
            if remaining is None:
                continue
            for connection in gone:
                remaining.pop(connection, None)
            if not remaining:
                del self._topics[topic]

    async def viewers(self, topic: str) -> list[Viewer]:
        members = self._topics.get(topic)
        if not members:
            return []
        now = self.clock()
        for connection in [c for c, (expires, _) in members.items() if expires <= now]:
            del members[connection]
        if not members:
            del self._topics[topic]
            return []
        return sorted((viewer for _, viewer in members.values()), key=lambda v: v.since)

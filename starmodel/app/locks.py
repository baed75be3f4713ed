"""Per-entity locks: events on one entity instance run one at a time within a process."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType
from typing import Any

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """A lock per key, created on demand and forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, _Held] = {}

    def hold(self, key: Hashable) -> _Held:
        """``async with locks.hold(key):`` runs the block alone for that key."""
        held = self._locks.get(key)
        if held is None:
            held = self._locks[key] = _Held(self._locks, key)
        return held

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """One key's lock and the number of tasks holding or waiting for it.

    ``handed`` is what the last holder left for the next one (an entity as it was committed):
    it lives only while somebody holds or waits for the key.
    """

    __slots__ = ("handed", "key", "lock", "owners", "users")

    def __init__(self, owners: dict[Hashable, _Held], key: Hashable) -> None:
        self.owners = owners
        self.key = key
        self.lock = asyncio.Lock()
        self.users = 0
        self.handed: Any = None

    async def __aenter__(self) -> _Held:
        self.users += 1
        try:
            await self.lock.acquire()
        except BaseException:
            self._leave()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.release()
        self._leave()

    def _leave(self) -> None:
        self.users -= 1
        if self.users == 0 and self.owners.get(self.key) is self:
            del self.owners[self.key]

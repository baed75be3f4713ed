"""Per-entity locks: events on one entity instance run one at a time within a process."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType
from typing import Any

__all__ = ["KeyedLocks", "Turn"]


class KeyedLocks:
    """A lock per key, created on demand and forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, _Held] = {}

    def hold(self, key: Hashable) -> Turn:
        """``async with locks.hold(key):`` runs the block alone for that key."""
        held = self._locks.get(key)
        if held is None:
            held = self._locks[key] = _Held(self._locks, key)
        return Turn(held)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """One key's lock, the number of tasks holding or waiting for it, and what the holders
    leave for the next one (``handed``, ``published``): it lives only while somebody holds or
    waits for the key."""

    __slots__ = ("handed", "key", "lock", "owners", "published", "users")

    def __init__(self, owners: dict[Hashable, _Held], key: Hashable) -> None:
        self.owners = owners
        self.key = key
        self.lock = asyncio.Lock()
        self.users = 0
        self.handed: Any = None
        self.published: asyncio.Future[None] | None = None

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0 and self.owners.get(self.key) is self:
            del self.owners[self.key]


class Turn:
    """One task's turn at a key: ``async with`` it; ``pass_on()`` lets the next task in before
    the block ends (what the block still does then must not need the key alone).

    ``handed`` and ``published`` are the key's, shared by its successive turns: what the last
    holder left for the next (an entity as committed), and the future of the last event whose
    publication the next must wait for.
    """

    __slots__ = ("_held", "_holding")

    def __init__(self, held: _Held) -> None:
        self._held = held
        self._holding = False

    @property
    def handed(self) -> Any:
        return self._held.handed

    @handed.setter
    def handed(self, value: Any) -> None:
        self._held.handed = value

    @property
    def published(self) -> asyncio.Future[None] | None:
        return self._held.published

    @published.setter
    def published(self, value: asyncio.Future[None] | None) -> None:
        self._held.published = value

    async def __aenter__(self) -> Turn:
        held = self._held
        held.users += 1
        try:
            await held.lock.acquire()
        except BaseException:
            held.leave()
            raise
        self._holding = True
        return self

    def pass_on(self) -> None:
        """Let the next task in now (once; the block goes on without the key)."""
        if self._holding:
            self._holding = False
            self._held.lock.release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.pass_on()
        self._held.leave()

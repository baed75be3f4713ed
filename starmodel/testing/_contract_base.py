"""The hooks and helpers the repository contract's checks share (see
``starmodel.testing.contract``): keys, units of work, reading back what a store holds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from starmodel.core.ports import EntityRepository

__all__ = ["Clock", "ContractBase", "Record", "RepositoryFactory", "RollBack"]

RepositoryFactory = Callable[[], "EntityRepository | Awaitable[EntityRepository]"]
"""What the ``repository_factory`` fixture returns: the repository of one unit of work (may be async)."""
Clock = Callable[[float], Awaitable[Any]]
Record = type[Any]
"""An entity class with the fields ``title: str``, ``count: int`` and ``tags: list[str]``."""


class RollBack(Exception):
    """Raised inside a unit of work to have it rolled back."""


class ContractBase:
    """What every check of the contract builds on."""

    # --- fixtures a subclass may override ---------------------------------------------------

    @pytest.fixture
    def advance_clock(self) -> Clock:
        """Moves the store's clock forward; the default waits on the real one."""
        return asyncio.sleep

    # --- hooks ------------------------------------------------------------------------------

    def key(self, n: int) -> str:
        """A key the store accepts, ordered like ``n`` (1 <= n <= 9)."""
        return str(n)

    def with_key(self, entity: Any, key: str) -> Any:
        """``entity`` (not saved yet) set up to be inserted under ``key``: its primary key
        field if the class has one (validated, so ``"3"`` becomes ``3``), and ``_sm_key``."""
        primary_key = type(entity).options().primary_key
        if primary_key is not None:
            setattr(entity, primary_key, key)
        entity._sm_key = key
        return entity

    # --- helpers ----------------------------------------------------------------------------

    @asynccontextmanager
    async def unit(self, factory: RepositoryFactory) -> AsyncIterator[EntityRepository]:
        """One unit of work: a fresh repository, ``begin``, then ``commit`` (or ``rollback``
        if the block raises)."""
        made = factory()
        repository = await made if inspect.isawaitable(made) else made
        assert isinstance(repository, EntityRepository), f"{made!r} is not an EntityRepository"
        await repository.begin()
        try:
            yield repository
        except BaseException:
            await repository.rollback()
            raise
        await repository.commit()

    async def open(self, factory: RepositoryFactory) -> EntityRepository:
        """A fresh repository with ``begin`` called (the caller ends it)."""
        made = factory()
        repository = await made if inspect.isawaitable(made) else made
        assert isinstance(repository, EntityRepository), f"{made!r} is not an EntityRepository"
        await repository.begin()
        return repository

    async def insert(self, factory: RepositoryFactory, entity: Any) -> Any:
        async with self.unit(factory) as repository:
            await repository.save(entity)
        return entity

    async def fetch(self, factory: RepositoryFactory, cls: Record, key: str) -> Any:
        async with self.unit(factory) as repository:
            return await repository.get(cls, key)

    async def stored(self, factory: RepositoryFactory, cls: Record, key: str) -> Any:
        found = await self.fetch(factory, cls, key)
        assert found is not None, f"{cls.__name__} {key!r} should be stored"
        return found

    async def listed_keys(
        self, factory: RepositoryFactory, cls: Record, *, offset: int = 0, limit: int = 50,
        owner: str | None = None,
    ) -> list[str]:
        async with self.unit(factory) as repository:
            found = await repository.list(cls, offset=offset, limit=limit, owner=owner)
        return [str(item._sm_key) for item in found]

    @staticmethod
    def values(entity: Any) -> dict[str, Any]:
        return {"title": entity.title, "count": entity.count, "tags": list(entity.tags)}

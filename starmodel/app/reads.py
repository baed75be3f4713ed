"""The read side for pages: an entity, a record or a list of records, to render.

Reads open a unit of work of their own and change nothing; the owner of a private entity's
records is the session they are read for. The web adapter and the ``StarModel`` facade read
through here, never through a unit of work they open themselves.
"""

from __future__ import annotations

from typing import TypeVar

from starmodel.app.dispatcher import UowFactory
from starmodel.core.entity import Entity

__all__ = ["EntityReads"]

E = TypeVar("E", bound=Entity)


class EntityReads:
    """Loads what pages show, each read in a unit of work of its own."""

    def __init__(self, uow_factory: UowFactory) -> None:
        self.uow_factory = uow_factory

    async def load(self, entity_cls: type[E], key: str) -> E:
        """The instance of a session or global entity under ``key`` (its defaults if none
        was saved yet)."""
        async with self.uow_factory(entity_cls) as uow:
            return await uow.load(entity_cls, key)

    async def find(self, entity_cls: type[E], key: str, *, owner: str | None = None) -> E | None:
        """The record ``key`` (``None`` if there is none, or if it is a private record of
        another session than ``owner``)."""
        async with self.uow_factory(entity_cls) as uow:
            uow.owner = owner
            return await uow.get(entity_cls, key)

    async def list(
        self, entity_cls: type[E], *, owner: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[E]:
        """Records in key order (a private entity's: those of ``owner``; none without one)."""
        async with self.uow_factory(entity_cls) as uow:
            uow.owner = owner
            return await uow.list(entity_cls, offset=offset, limit=limit)

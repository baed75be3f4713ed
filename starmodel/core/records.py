"""``Todo.records``: the records of an entity class, inside the running event's unit of work.

Events use it to create, fetch, list and delete records; every change goes into the event's
one transaction (committed together, or rolled back together)::

    @event
    def create(cls, title: str):
        cls.records.add(Todo(title=title))
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from starmodel.core.errors import ConfigurationError, EntityNotFound

if TYPE_CHECKING:
    from starmodel.core.entity import Entity

__all__ = ["Records", "RecordsDescriptor", "Workspace", "current_workspace"]

E = TypeVar("E", bound="Entity")


class Workspace(Protocol):
    """What the unit of work offers to ``records`` (implemented by ``app.uow.UnitOfWork``)."""

    async def get(self, entity_cls: type[E], key: str) -> E | None: ...
    async def list(self, entity_cls: type[E], *, offset: int = 0, limit: int = 50) -> list[E]: ...
    def add(self, entity: E) -> E: ...
    def remove(self, entity: Entity) -> None: ...


current_workspace: ContextVar[Workspace | None] = ContextVar("starmodel_workspace", default=None)


class Records(Generic[E]):
    """The records of one entity class, bound to the unit of work of the running event."""

    __slots__ = ("entity_cls",)

    def __init__(self, entity_cls: type[E]) -> None:
        self.entity_cls = entity_cls

    @property
    def _workspace(self) -> Workspace:
        workspace = current_workspace.get()
        if workspace is None:
            raise ConfigurationError(
                f"{self.entity_cls.__name__}.records is available inside an @event only "
                "(it belongs to the event's unit of work)"
            )
        return workspace

    async def get(self, key: Any) -> E:
        """The record with this key; ``EntityNotFound`` (404) if there is none."""
        found = await self._workspace.get(self.entity_cls, str(key))
        if found is None:
            raise EntityNotFound(f"{self.entity_cls.__name__} {key} does not exist")
        return found

    async def find(self, key: Any) -> E | None:
        """The record with this key, or ``None``."""
        return await self._workspace.get(self.entity_cls, str(key))

    async def list(self, *, offset: int = 0, limit: int = 50) -> list[E]:
        """Records in key order (changes to them are saved with the event)."""
        return await self._workspace.list(self.entity_cls, offset=offset, limit=limit)

    def add(self, entity: E) -> E:
        """Insert ``entity`` when the event commits; its key is set then."""
        if not isinstance(entity, self.entity_cls):
            raise TypeError(f"{self.entity_cls.__name__}.records.add() takes a {self.entity_cls.__name__}")
        return self._workspace.add(entity)

    def delete(self, entity: E) -> None:
        """Delete ``entity`` when the event commits."""
        self._workspace.remove(entity)


class RecordsDescriptor:
    """Class attribute ``records``: ``Todo.records`` is a ``Records[Todo]``."""

    def __get__(self, instance: object, owner: type[E]) -> Records[E]:
        return Records(owner)

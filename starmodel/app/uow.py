"""The unit of work: one event's load -> change -> validate -> commit (or roll back) -> publish."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ValidationFailed
from starmodel.core.messages import EntityChanged
from starmodel.core.ports import EntityRepository, EventBus

__all__ = ["UnitOfWork", "changed_values"]

E = TypeVar("E", bound=Entity)
_IMMUTABLE = (int, float, str, bool, bytes, type(None))


def changed_values(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that differ from ``before`` (new keys included)."""
    return {
        name: value
        for name, value in after.items()
        if name not in before or before[name] != value
    }


class UnitOfWork:
    """Wraps one event (or one yield of a streaming event) in a store transaction.

    Nothing is published until the store has committed; an exception rolls the store back
    and publishes nothing. Create a fresh one per event: it keeps the entity's snapshot.
    """

    def __init__(self, repository: EntityRepository, bus: EventBus) -> None:
        self.repository = repository
        self.bus = bus
        self._before: dict[str, Any] = {}
        self._open = False

    async def __aenter__(self) -> UnitOfWork:
        await self.repository.begin()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._open:
            await self.rollback()

    async def load(self, entity_cls: type[E], key: str) -> E:
        """The stored entity, or a fresh one with its defaults if none is stored yet."""
        entity = await self.repository.get(entity_cls, key)
        if entity is None:
            entity = entity_cls()
            entity._sm_key = key
        self._before = entity.public_state()
        return entity

    async def commit(self, entity: Entity, ctx: CallContext) -> dict[str, Any]:
        """Validate, save and commit; then publish what changed. Returns the changed signals."""
        _revalidate_containers(entity)
        after = entity.public_state()
        changes = changed_values(self._before, after)
        await self.repository.save(entity)
        await self.repository.commit()
        self._before = after
        await self.repository.begin()
        options = type(entity).options()
        if changes:
            await self.bus.publish(
                EntityChanged(
                    namespace=options.namespace,
                    key=entity._sm_key or "",
                    scope=options.scope,
                    changes=changes,
                    session_id=ctx.session_id if options.scope == "session" else None,
                    origin_tab=ctx.tab_id,
                    origin_session=ctx.session_id,
                )
            )
        for fact in entity.collect_events():
            await self.bus.publish(fact)
        return changes

    async def rollback(self) -> None:
        self._open = False
        await self.repository.rollback()


def _revalidate_containers(entity: Entity) -> None:
    """Re-validate fields holding containers: ``self.items.append(...)`` changes them in place,
    bypassing validated assignment (immutable values were validated when assigned)."""
    cls = type(entity)
    validator = cls.__pydantic_validator__
    try:
        for name, value in list(entity.__dict__.items()):
            if not isinstance(value, _IMMUTABLE):
                validator.validate_assignment(entity, name, value)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, f"{cls.__name__} would become invalid") from None

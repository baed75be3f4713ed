"""``SERVER_MEMORY``: entities kept in this process, with optional TTL. The zero-config default."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError
from starmodel.core.ports import EntityRepository

__all__ = ["MemoryRepository"]

E = TypeVar("E", bound=Entity)
_IMMUTABLE = (int, float, str, bool, bytes, type(None))
_SWEEP_EVERY = 1024


class MemoryRepository(EntityRepository):
    """Keeps ``(entity, version, expires_at)`` per ``(namespace, key)``.

    ``get`` hands out copies, so an event that fails leaves the stored entity untouched.
    Expired entries vanish on access and in a sweep every few hundred writes.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: dict[tuple[str, str], tuple[Entity, int, float | None]] = {}
        self._clock = clock
        self._writes = 0

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        item = self._live_item(entity_cls.namespace(), key)
        if item is None:
            return None
        entity, version, _ = item
        return _detached_copy(entity, key=key, version=version)  # type: ignore[return-value]

    async def save(self, entity: Entity) -> None:
        cls = type(entity)
        identity = entity.__pydantic_private__  # _sm_key/_sm_version, read without pydantic's lookup
        assert identity is not None
        key = identity["_sm_key"]
        if key is None:
            if cls.options().scope != "id":
                raise ValueError(f"{cls.__name__} has no key; load it through a repository first")
            key = identity["_sm_key"] = uuid.uuid4().hex  # a new record
        slot = (cls.namespace(), key)
        current = self._live_item(*slot)
        stored_version = current[1] if current else 0
        if stored_version != identity["_sm_version"]:
            raise ConcurrencyError(
                f"{cls.__name__} {key!r} changed meanwhile (version {stored_version}, "
                f"expected {identity['_sm_version']})"
            )
        ttl = cls.options().ttl
        expires = self._clock() + ttl if ttl else None
        version = stored_version + 1
        self._items[slot] = (_detached_copy(entity), version, expires)
        identity["_sm_version"] = version
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self.sweep()

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        return self._items.pop((entity_cls.namespace(), key), None) is not None

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        namespace = entity_cls.namespace()
        keys = sorted(k for (ns, k) in list(self._items) if ns == namespace)
        if owner is not None:
            keys = [k for k in keys if self._items[(namespace, k)][0]._sm_owner == owner]
        found: list[E] = []
        for key in keys[offset:]:
            if len(found) >= limit:
                break
            entity = await self.get(entity_cls, key)
            if entity is not None:
                found.append(entity)
        return found

    def sweep(self) -> int:
        """Drop expired entries; returns how many went."""
        now = self._clock()
        expired = [slot for slot, (_, _, exp) in self._items.items() if exp is not None and exp <= now]
        for slot in expired:
            del self._items[slot]
        return len(expired)

    def __len__(self) -> int:
        return len(self._items)

    def _live_item(self, namespace: str, key: str) -> tuple[Entity, int, float | None] | None:
        item = self._items.get((namespace, key))
        if item is not None and item[2] is not None and item[2] <= self._clock():
            del self._items[(namespace, key)]
            return None
        return item


def _detached_copy(entity: Entity, *, key: str | None = None, version: int | None = None) -> Entity:
    """A copy sharing only immutable values with ``entity`` (much cheaper than a deepcopy).

    Built like pydantic's own copy, without its generic machinery: the stored value was
    validated when it was saved, so nothing needs validating again.
    """
    cls = type(entity)
    values = entity.__dict__.copy()
    for name, value in values.items():
        if not isinstance(value, _IMMUTABLE):
            values[name] = copy.deepcopy(value)
    clone = cls.__new__(cls)
    object.__setattr__(clone, "__dict__", values)
    object.__setattr__(clone, "__pydantic_fields_set__", set(entity.__pydantic_fields_set__))
    object.__setattr__(clone, "__pydantic_extra__", None)
    private = dict(entity.__pydantic_private__ or {})
    private["_sm_pending"] = None
    if key is not None:
        private["_sm_key"] = key
    if version is not None:
        private["_sm_version"] = version
    object.__setattr__(clone, "__pydantic_private__", private)
    return clone

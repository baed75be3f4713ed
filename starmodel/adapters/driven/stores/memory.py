"""``SERVER_MEMORY``: entities kept in this process, with optional TTL. The zero-config default.

A ``MemoryStore`` holds the entities of the app (one per process, shared by every unit of
work); a ``MemoryRepository`` is one unit of work's view of it: writes wait in the repository
until ``commit``, so an event that is refused leaves the store untouched.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError
from starmodel.core.ports import EntityRepository

__all__ = ["MemoryRepository", "MemoryStore"]

E = TypeVar("E", bound=Entity)
Slot = tuple[str, str]  # (namespace, key)
Item = tuple[Entity, int, float | None]  # (entity, version, expires_at)
_IMMUTABLE = (int, float, str, bool, bytes, type(None))
_SWEEP_EVERY = 1024


class MemoryStore:
    """Keeps ``(entity, version, expires_at)`` per ``(namespace, key)`` for this process.

    Expired entries vanish on access and in a sweep every thousand or so writes. A slot a
    prepared unit of work is about to write is reserved until that unit commits or rolls
    back: no other unit can prepare or commit a write to it meanwhile.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.items: dict[Slot, Item] = {}
        self.reserved: dict[Slot, MemoryRepository] = {}
        self.clock = clock
        self._writes = 0

    def live_item(self, slot: Slot) -> Item | None:
        item = self.items.get(slot)
        if item is not None and item[2] is not None and item[2] <= self.clock():
            del self.items[slot]
            return None
        return item

    def version(self, slot: Slot) -> int:
        """The stored version of ``slot`` (0: nothing, or expired)."""
        item = self.items.get(slot)
        if item is None or (item[2] is not None and item[2] <= self.clock()):
            return 0
        return item[1]

    def write(self, slot: Slot, entity: Entity | None, version: int, ttl: float | None) -> None:
        """Store ``entity`` (``None``: delete) as ``version`` of ``slot``."""
        if entity is None:
            self.items.pop(slot, None)
            return
        self.items[slot] = (entity, version, self.clock() + ttl if ttl else None)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self.sweep()

    def sweep(self) -> int:
        """Drop expired entries; returns how many went."""
        now = self.clock()
        expired = [slot for slot, (_, _, exp) in self.items.items() if exp is not None and exp <= now]
        for slot in expired:
            del self.items[slot]
        return len(expired)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(slots=True)
class _Staged:
    """A write waiting for commit: the final state of one entity in this unit of work."""

    entity: Entity | None  # None: a delete
    version: int  # the version after this unit (0 for a delete)
    expected: int  # the version the store must still have when this unit commits
    ttl: float | None


class MemoryRepository(EntityRepository):
    """One unit of work on a ``MemoryStore`` (without one, it makes its own). Units of work
    share the store, never a repository: each needs its own for its pending writes.

    ``get`` hands out copies and reads this unit's own pending writes; ``save`` and
    ``delete`` check the version at once and wait until ``commit``. ``prepare`` checks the
    versions again and reserves the slots; ``commit`` applies (checking first if it was not
    prepared); ``rollback`` forgets the writes and frees the slots.
    """

    commit_cannot_fail = True

    def __init__(
        self, store: MemoryStore | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store if store is not None else MemoryStore(clock)
        self._staged: dict[Slot, _Staged] = {}
        self._held: list[Slot] = []

    # --- reads --------------------------------------------------------------------------

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        slot = (entity_cls.namespace(), key)
        staged = self._staged.get(slot) if self._staged else None
        if staged is not None:
            if staged.entity is None:
                return None
            return _detached_copy(staged.entity, key=key, version=staged.version)  # type: ignore[return-value]
        item = self.store.live_item(slot)
        if item is None:
            return None
        return _detached_copy(item[0], key=key, version=item[1])  # type: ignore[return-value]

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        namespace = entity_cls.namespace()
        keys = {k for (ns, k) in list(self.store.items) if ns == namespace}
        keys.update(k for (ns, k) in self._staged if ns == namespace)
        found: list[E] = []
        skipped = 0
        for key in sorted(keys):
            if len(found) >= max(limit, 0):
                break
            current = self._current((namespace, key))
            if current is None or (owner is not None and current[0]._sm_owner != owner):
                continue
            if skipped < offset:
                skipped += 1
                continue
            found.append(_detached_copy(current[0], key=key, version=current[1]))  # type: ignore[arg-type]
        return found

    def _current(self, slot: Slot) -> tuple[Entity, int] | None:
        """The entity and version of ``slot`` as this unit sees it (``None``: absent)."""
        staged = self._staged.get(slot)
        if staged is not None:
            return None if staged.entity is None else (staged.entity, staged.version)
        item = self.store.live_item(slot)
        return None if item is None else (item[0], item[1])

    # --- writes (applied at commit) -------------------------------------------------------

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
        staged = self._staged.get(slot) if self._staged else None
        current = staged.version if staged is not None else self.store.version(slot)
        version = identity["_sm_version"]
        if current != version:
            raise ConcurrencyError(
                f"{cls.__name__} {key!r} changed meanwhile (version {current}, expected {version})"
            )
        expected = staged.expected if staged is not None else current
        self._staged[slot] = _Staged(_detached_copy(entity), version + 1, expected, cls.options().ttl)
        identity["_sm_version"] = version + 1

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        slot = (entity_cls.namespace(), key)
        staged = self._staged.get(slot)
        current = staged.version if staged is not None else self.store.version(slot)
        if current == 0:
            return False
        expected = staged.expected if staged is not None else current
        self._staged[slot] = _Staged(None, 0, expected, None)
        return True

    # --- transaction hooks --------------------------------------------------------------

    async def begin(self) -> None:
        self._forget()

    async def prepare(self) -> None:
        self._check(reserve=True)

    async def commit(self) -> None:
        staged = self._staged
        if not staged:
            return
        self._check(reserve=False)  # slots this unit holds were checked when it prepared
        write = self.store.write
        for slot, item in staged.items():
            write(slot, item.entity, item.version, item.ttl)
        staged.clear()
        if self._held:
            self._release()

    async def rollback(self) -> None:
        self._forget()

    def _check(self, *, reserve: bool) -> None:
        """Raise ``ConcurrencyError`` (holding nothing) unless every pending write still fits
        the store and no other unit holds its slot; with ``reserve``, hold the slots."""
        reserved = self.store.reserved
        for slot, staged in self._staged.items():
            holder = reserved.get(slot)
            if holder is self:
                continue
            if holder is not None or self.store.version(slot) != staged.expected:
                self._release()
                namespace, key = slot
                raise ConcurrencyError(f"{namespace} {key!r} changed meanwhile")
            if reserve:
                reserved[slot] = self
                self._held.append(slot)

    def _release(self) -> None:
        reserved = self.store.reserved
        for slot in self._held:
            if reserved.get(slot) is self:
                del reserved[slot]
        self._held.clear()

    def _forget(self) -> None:
        self._staged.clear()
        if self._held:
            self._release()

    # --- the store, for callers that use one repository as the whole store ----------------

    def sweep(self) -> int:
        """Drop expired entries of the store; returns how many went."""
        return self.store.sweep()

    def __len__(self) -> int:
        return len(self.store)


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

"""Fakes for the application layer: transactional repositories (committing like SQL, like Redis
or like memory) and a recording bus."""

from typing import Any

from starmodel import ConcurrencyError, Entity
from starmodel.app.bus import InProcessBus
from starmodel.core.ports import EntityRepository


class FakeRepository(EntityRepository):
    """Keeps saves staged until ``commit``; ``rollback`` forgets them.

    ``conflicts`` makes the next N saves fail with ``ConcurrencyError`` (another writer won).
    ``log`` records the calls in order so tests can check what happened when.
    """

    def __init__(self, name: str = "", journal: list[str] | None = None) -> None:
        self.committed: dict[tuple[str, str], tuple[Entity, int]] = {}
        self.staged: dict[tuple[str, str], tuple[Entity, int]] = {}
        self.log: list[str] = []
        self.conflicts = 0
        self.name = name
        self.journal = journal if journal is not None else []  # "<name>.<call>", shared by fakes
        self.failures: dict[str, BaseException] = {}  # call name -> what it raises (once)

    def _note(self, call: str) -> None:
        self.log.append(call)
        self.journal.append(f"{self.name}.{call}")
        failure = self.failures.pop(call, None)
        if failure is not None:
            raise failure

    def stored(self, cls: type[Entity], key: str) -> Entity | None:
        item = self.committed.get((cls.namespace(), key))
        return item[0].model_copy(deep=True) if item else None

    async def get(self, entity_cls: Any, key: str) -> Any:
        self._note("get")
        item = self.committed.get((entity_cls.namespace(), key))
        if item is None:
            return None
        entity = item[0].model_copy(deep=True)
        entity._sm_key, entity._sm_version = key, item[1]
        return entity

    async def save(self, entity: Entity) -> None:
        self._note("save")
        slot = (type(entity).namespace(), entity._sm_key or "")
        current = self.staged.get(slot) or self.committed.get(slot)
        if self.conflicts:
            self.conflicts -= 1
            raise ConcurrencyError("another writer won")
        if (current[1] if current else 0) != entity._sm_version:
            raise ConcurrencyError("stale version")
        entity._sm_version += 1
        self.staged[slot] = (entity.model_copy(deep=True), entity._sm_version)

    async def delete(self, entity_cls: Any, key: str) -> bool:
        return self.committed.pop((entity_cls.namespace(), key), None) is not None

    async def list(self, entity_cls: Any, *, offset: int = 0, limit: int = 50) -> list[Any]:
        raise NotImplementedError

    async def begin(self) -> None:
        self._note("begin")
        self.staged.clear()

    async def prepare(self) -> None:
        self._note("prepare")

    async def commit(self) -> None:
        self._note("commit")
        self.committed.update(self.staged)
        self.staged.clear()

    async def rollback(self) -> None:
        self._note("rollback")
        self.staged.clear()


class FakeDecidingRepository(FakeRepository):
    """Like a Redis repository: its commit is one check-and-write that may still refuse."""

    decides_at_commit = True


class FakeLocalRepository(FakeRepository):
    """Like the memory repository: its commit only changes this process's memory."""

    commit_cannot_fail = True


class RecordingBus(InProcessBus):
    """A real in-process bus that also keeps everything published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)
        await super().publish(event)

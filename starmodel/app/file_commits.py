"""Files committed with their entities: a unit of work whose entities now hold new files makes
those staged uploads permanent just before its stores commit (undone if they fail), and removes
the files its entities no longer hold once they have committed. An event that fails, or never
commits, leaves no kept file behind (its staged uploads are discarded when the request ends)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from starmodel.app.uow import Saved
from starmodel.core.entity import Entity
from starmodel.core.errors import ValidationFailed
from starmodel.core.files import FileStore, StoredFile, file_fields
from starmodel.core.ports import EntityRepository

__all__ = ["FileCommit", "FileCommits", "presented_uploads"]

E = TypeVar("E", bound=Entity)
log = logging.getLogger("starmodel.files")

presented_uploads: ContextVar[set[str] | None] = ContextVar("sm_presented_uploads", default=None)
"""The staged uploads the running request handed to events or forms (ids): those still staged
when the request ends were not committed, and are discarded."""


def _file_ids(entity_cls: type[Entity], values: dict[str, Any] | None) -> dict[str, str]:
    """``{file id: field}`` of the files ``values`` hold."""
    if not values:
        return {}
    found = {}
    for name in file_fields(entity_cls):
        value = values.get(name)
        if isinstance(value, StoredFile):
            found[value.id] = name
    return found


class FileCommits:
    """The unit of work's commit hook for file fields (``UnitOfWork(commit_hooks=...)``)."""

    def __init__(self, store: Callable[[], FileStore]) -> None:
        self.store = store

    def __call__(self, saved: list[Saved]) -> FileCommit | None:
        before: dict[str, str] = {}
        after: dict[str, str] = {}
        for item in saved:
            cls = type(item.entity)
            if not file_fields(cls):
                continue
            before.update(_file_ids(cls, item.before))
            after.update(_file_ids(cls, item.after))
        new = {fid: name for fid, name in after.items() if fid not in before}
        gone = [fid for fid in before if fid not in after]
        if not new and not gone:
            return None
        return FileCommit(self.store(), new, gone)


class FileCommit(EntityRepository):
    """One commit's files, as a participant of the commit: ``prepare`` makes the new files
    permanent (refusing a file that is not a fresh upload), ``rollback`` undoes that, and
    ``commit`` (after every store has committed) removes the files no longer held."""

    commit_cannot_fail: ClassVar[bool] = True

    def __init__(self, store: FileStore, new: dict[str, str], gone: list[str]) -> None:
        self.store = store
        self.new = new
        self.gone = gone
        self.promoted: list[str] = []

    async def prepare(self) -> None:
        for file_id, field in self.new.items():
            if not await self.store.promote(file_id):
                await self.rollback()
                raise ValidationFailed(
                    {field: "This upload is no longer available; upload the file again"},
                    "The file was not saved",
                )
            self.promoted.append(file_id)

    async def commit(self) -> None:
        for file_id in self.gone:
            try:
                await self.store.delete(file_id)
            except Exception:  # the change is committed; a file left over is only logged
                log.exception("a replaced file (%s) could not be removed", file_id)

    async def rollback(self) -> None:
        promoted, self.promoted = self.promoted, []
        for file_id in promoted:
            await self.store.demote(file_id)

    # a participant of the commit, not a repository of entities
    async def get(self, entity_cls: type[E], key: str) -> E | None:
        raise NotImplementedError

    async def save(self, entity: Entity) -> None:
        raise NotImplementedError

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        raise NotImplementedError

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        raise NotImplementedError

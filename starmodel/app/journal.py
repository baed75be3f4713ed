"""The journal as an application service: a record's history, and undo of its latest changes.

Undo puts an entry's ``before`` values back through a fresh unit of work (the entity's turn,
the store's version checks, journaled like any change, naming the entry it undoes). It is
refused (``UndoRefused``, 409) when the change cannot be reversed: a later change touched the
same fields, the entry was undone already, it created or deleted the record, or it changed
server-only fields whose values the journal does not keep.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starmodel.app.uow import UnitOfWork
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, EntityNotFound
from starmodel.core.journal import (
    HIDDEN,
    Doing,
    Journal,
    JournalEntry,
    UndoRefused,
    journal_key,
    undone_ids,
)

__all__ = ["JournalService"]

_SCAN = 1000  # entries looked at to find the latest undoable one, or those after an entry
_ATTEMPTS = 3


class JournalService:
    """History and undo for journaled entities.

    Args:
        uow_factory: a fresh unit of work for an entity class.
        turn: ``turn(entity_cls, key)``: events on one instance take turns (the dispatcher's).
        journal_for: where an entity class's journal is kept.
    """

    def __init__(
        self,
        uow_factory: Callable[[type[Entity]], UnitOfWork],
        turn: Callable[[type[Entity], str], AbstractAsyncContextManager[Any]],
        journal_for: Callable[[type[Entity]], Journal],
    ) -> None:
        self.uow_factory = uow_factory
        self.turn = turn
        self.journal_for = journal_for

    async def history(
        self, entity_cls: type[Entity], key: str | None = None, *, limit: int = 50
    ) -> list[JournalEntry]:
        """The newest entries of one instance (``key``: its key, a session entity's session
        id), or of every instance of the class; newest first."""
        _check_journaled(entity_cls)
        stored = journal_key(entity_cls, key) if key is not None else None
        return await self.journal_for(entity_cls).history(entity_cls.namespace(), stored, limit=limit)

    async def undo(
        self,
        entity_cls: type[Entity],
        key: str,
        entry_id: str | None = None,
        ctx: CallContext | None = None,
    ) -> JournalEntry:
        """Undo entry ``entry_id`` of an instance (default: its latest change not undone yet)
        for ``ctx``; returns the entry undone. Raises ``UndoRefused`` (409) with the reason."""
        _check_journaled(entity_cls)
        ctx = ctx or CallContext(session_id="server")
        for attempt in range(_ATTEMPTS):
            try:
                return await self._undo_once(entity_cls, key, entry_id, ctx)
            except ConcurrencyError:  # another writer came first: look again
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _undo_once(
        self, entity_cls: type[Entity], key: str, entry_id: str | None, ctx: CallContext
    ) -> JournalEntry:
        journal = self.journal_for(entity_cls)
        namespace, stored = entity_cls.namespace(), journal_key(entity_cls, key)
        async with self.turn(entity_cls, key), self.uow_factory(entity_cls) as uow:
            uow.owner = ctx.session_id
            entity = await uow.load(entity_cls, key)  # held from here (SQL: the row is locked)
            target = await _target(journal, namespace, stored, entry_id)
            later = await journal.history(namespace, stored, limit=_SCAN, newer_than=target.version)
            _check_reversible(target, later, entity)
            for name, (before, _) in target.changes.items():
                setattr(entity, name, before)
            uow.doing = Doing("undo", {"entry": target.id}, namespace, undoes=target.id)
            await uow.commit(ctx)
        return target


def _check_journaled(entity_cls: type[Entity]) -> None:
    if entity_cls.options().journal is None:
        raise UndoRefused(
            f"{entity_cls.__name__} keeps no journal (model_config['journal'] = True turns it on)"
        )


async def _target(journal: Journal, namespace: str, key: str, entry_id: str | None) -> JournalEntry:
    """The entry to undo: ``entry_id`` (of this record), else the latest not undone yet."""
    if entry_id is not None:
        found = await journal.find(namespace, entry_id)
        if found is None or found.key != key:
            raise EntityNotFound(f"no journal entry {entry_id} for this record")
        return found
    recent = await journal.history(namespace, key, limit=_SCAN)
    undone = undone_ids(recent)
    for entry in recent:
        if entry.undoes is None and entry.id not in undone:
            return entry
    raise UndoRefused("nothing to undo: every change kept in the journal is undone already")


def _check_reversible(target: JournalEntry, later: list[JournalEntry], entity: Entity) -> None:
    """Raise ``UndoRefused`` unless putting ``target``'s before values back loses nothing."""
    what = f"entry {target.id} ({target.event})"
    if target.kind == "create":
        raise UndoRefused(f"{what} created the record; delete it instead")
    if target.kind == "delete":
        raise UndoRefused(f"{what} deleted the record; a deleted record is not brought back by undo")
    hidden = sorted(name for name, pair in target.changes.items() if pair[0] == HIDDEN)
    if hidden:
        raise UndoRefused(
            f"{what} changed server-only fields ({', '.join(hidden)}), whose values the journal does not keep"
        )
    undone = undone_ids(later)
    if target.id in undone:
        raise UndoRefused(f"{what} is undone already (by entry {undone[target.id]})")
    later_ids = {entry.id for entry in later}
    cancelled = {x for x, y in undone.items() if x in later_ids} | {
        y for x, y in undone.items() if x in later_ids
    }
    for entry in sorted(later, key=lambda e: e.version):
        if entry.id in cancelled:
            continue
        overlap = sorted(set(entry.changes) & set(target.changes))
        if overlap:
            when = entry.at.strftime("%Y-%m-%d %H:%M:%S")
            raise UndoRefused(
                f"cannot undo {what}: {', '.join(overlap)} changed later, by {entry.event} "
                f"(entry {entry.id}, {entry.actor}, {when} UTC); undo that first"
            )
    current = entity.public_state()
    fields = type(entity).model_fields
    for name, (_, after) in target.changes.items():
        if name not in fields:
            raise UndoRefused(f"cannot undo {what}: {type(entity).__name__} has no field {name} any more")
        if current.get(name) != after:
            raise UndoRefused(f"cannot undo {what}: {name} has changed since, outside the journal")

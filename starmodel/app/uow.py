"""The unit of work: one event's load -> change -> validate -> commit (or roll back) -> publish.

It tracks every entity the event touches (the one it runs on, and records it gets, adds or
deletes through ``Entity.records``), saves the changed ones in one transaction per store,
commits the stores so that all of them apply or none (see ``EntityRepository``) and, only
after they committed, publishes what changed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError

from starmodel.app.journal_writes import Entries, append_after_commit, record_in_stores
from starmodel.app.observe import phase
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import CommitIncomplete, ConcurrencyError, EntityNotFound, ValidationFailed
from starmodel.core.journal import Doing, Journal, JournalEntry
from starmodel.core.messages import EntityChanged
from starmodel.core.ports import EntityRepository, EventBus, Handed

__all__ = ["CommitHook", "JournalFor", "RepositoryFor", "Saved", "UnitOfWork", "changed_values"]

E = TypeVar("E", bound=Entity)
RepositoryFor = Callable[[type[Entity]], EntityRepository]
JournalFor = Callable[[type[Entity]], Journal]
_IMMUTABLE = (int, float, str, bool, bytes, type(None), datetime, date, time, UUID, Decimal, Enum)
log = logging.getLogger("starmodel")
_Facts = list[tuple[EntityRepository, EntityChanged]]  # what to publish, by the store that saved it
_Incomplete = tuple[CommitIncomplete, list[EntityRepository]]  # the failure, the stores that did commit


def changed_values(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that differ from ``before`` (new keys included)."""
    return {
        name: value
        for name, value in after.items()
        if name not in before or before[name] != value
    }


@dataclass(frozen=True)
class Saved:
    """An entity a commit writes: its field values before (``{}`` for a new one) and after
    (``None`` for a deleted one)."""

    entity: Entity
    before: dict[str, Any]
    after: dict[str, Any] | None


CommitHook = Callable[[list[Saved]], "EntityRepository | None"]
"""Sees what a commit writes, before the stores commit; may return one more participant of
the commit (prepared, committed and rolled back with the stores), e.g. the files it keeps."""


@dataclass
class _Tracked:
    entity: Entity
    fields: dict[str, Any]  # the field values as last saved (containers copied)
    public: dict[str, Any]  # the browser-visible state as last saved
    new: bool = False
    deleted: bool = False


class UnitOfWork:
    """Wraps one event (or one yield of a streaming event) in store transactions.

    Nothing is published until the stores have committed; an exception rolls every store back
    and publishes nothing. Create a fresh one per event: it keeps the entities' snapshots.

    Args:
        repositories: the repository of an entity class (or one repository for all).
        bus: where committed changes are published.
        journal: the journal of a journaled entity whose store keeps none in its transaction.
    """

    def __init__(
        self,
        repositories: RepositoryFor | EntityRepository,
        bus: EventBus,
        commit_hooks: Sequence[CommitHook] = (),
        journal: JournalFor | None = None,
    ) -> None:
        if isinstance(repositories, EntityRepository):
            single = repositories
            self.repository_for: RepositoryFor = lambda entity_cls: single
        else:
            self.repository_for = repositories
        self.bus = bus
        self.commit_hooks = commit_hooks
        self.owner: str | None = None  # the session the event runs for (private records)
        self.doing: Doing | None = None  # the event running, for the journal
        self.journal_for = journal
        self._tracked: list[_Tracked] = []
        self._begun: list[EntityRepository] = []
        self._begun_for: dict[type[Entity], EntityRepository] = {}  # the repository of each class
        self._committed_for: dict[type[Entity], EntityRepository] = {}  # the same, after the commit
        self._open = False
        self.optimistic = False
        """The caller re-runs the event when a version check refuses its write (a plain
        event's first attempt): stores may read without locks (``read_optimistically``)."""
        self.on_queued: Callable[[Handed], None] | None = None
        """Told when the event's one write waits in its store's queue: the next event on the
        record may start meanwhile, from the ``Handed`` row."""
        self.took: Handed | None = None  # the row the event started from, if handed on
        self.publish_after: asyncio.Future[Any] | None = None
        """What must be done before this unit of work publishes (the event before it on the
        same entity publishing first)."""

    async def __aenter__(self) -> UnitOfWork:
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

    async def _repository(self, entity_cls: type[Entity]) -> EntityRepository:
        repository = self._begun_for.get(entity_cls)
        if repository is None:
            repository = self.repository_for(entity_cls)
            if not any(r is repository for r in self._begun):
                await repository.begin()
                if self.optimistic:
                    repository.read_optimistically(self._queued if self.on_queued is not None else None)
                self._begun.append(repository)
            self._begun_for[entity_cls] = repository
        return repository

    def _track(self, entity: Entity, *, new: bool = False) -> None:
        for item in self._tracked:
            if item.entity is entity:
                return
        self._tracked.append(_Tracked(entity, _snapshot(entity), entity.public_state(), new=new))

    # --- what events see (core.records.Workspace) ---------------------------------------

    async def load(self, entity_cls: type[E], key: str, handed: Handed | None = None) -> E:
        """The stored entity; for session and global entities a fresh one with its defaults
        if none is stored yet, for records ``EntityNotFound``.

        ``handed`` is the entity as the previous event on it committed it (``handed``); its
        store may take it instead of reading the entity again.
        """
        if handed is not None and type(handed.entity) is entity_cls and _key_of(handed.entity) == key:
            repository = await self._repository(entity_cls)
            if not self._tracked and repository.take_handed(handed):
                self.took = handed
                given: E = handed.entity
                if not self._may_see(given):
                    raise EntityNotFound(f"{entity_cls.__name__} {key} does not exist")
                self._track(given)
                return given
        entity = await self.get(entity_cls, key)
        if entity is not None:
            return entity
        if entity_cls.options().scope == "id":
            raise EntityNotFound(f"{entity_cls.__name__} {key} does not exist")
        entity = entity_cls()
        entity._sm_key = key
        self._track(entity)
        return entity

    async def refresh(self, entity: Entity) -> None:
        """Load the stored state of ``entity`` into that same object and track it here (a
        long-running event's ``self``, brought up to date before each of its stretches)."""
        cls = type(entity)
        current = await self.load(cls, _key_of(entity) or "")
        if current is entity:
            return
        entity.__dict__.clear()
        entity.__dict__.update(current.__dict__)
        private, fresh = entity.__pydantic_private__, current.__pydantic_private__
        if private is not None and fresh is not None:
            pending = private.get("_sm_pending")
            private.update(fresh)
            private["_sm_pending"] = pending
        for item in self._tracked:
            if item.entity is current:
                item.entity = entity

    def handed(self, entity: Entity) -> Handed | None:
        """After the commit: ``entity`` as its store stored it, when the store knows it without
        reading it again and the unit of work held nothing else (for the next event on it)."""
        if not self.tracks_only(entity):
            return None
        cls = type(entity)
        repository = self._committed_for.get(cls)
        return None if repository is None else repository.handed(cls, _key_of(entity) or "")

    def _queued(self, handed: Handed) -> None:
        """A store queued the one write of this unit of work (see ``on_queued``)."""
        tracked = self._tracked
        if (
            self.on_queued is not None
            and len(tracked) == 1
            and type(tracked[0].entity) is type(handed.entity)
            and _key_of(tracked[0].entity) == _key_of(handed.entity)
        ):
            self.on_queued(handed)

    def tracks_only(self, entity: Entity) -> bool:
        """Whether ``entity`` is the one entity this unit of work holds (loaded, added, deleted)."""
        return len(self._tracked) == 1 and self._tracked[0].entity is entity

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        known = self._tracked_entity(entity_cls, key)
        if known is not None:
            return None if known[1] else known[0]  # type: ignore[return-value]
        with phase("load"):
            entity = await (await self._repository(entity_cls)).get(entity_cls, key)
        if entity is None or not self._may_see(entity):
            return None  # another session's private record is "not found", not "forbidden"
        self._track(entity)
        return entity

    def _may_see(self, entity: Entity) -> bool:
        return not type(entity).options().private or entity._sm_owner == self.owner

    async def list(self, entity_cls: type[E], *, offset: int = 0, limit: int = 50) -> list[E]:
        owner = self.owner if entity_cls.options().private else None
        if entity_cls.options().private and owner is None:
            return []
        repository = await self._repository(entity_cls)
        found = await repository.list(entity_cls, offset=offset, limit=limit, owner=owner)
        result: list[E] = []
        for entity in found:
            known = self._tracked_entity(entity_cls, entity._sm_key or "")
            if known is None:
                self._track(entity)
                result.append(entity)
            elif not known[1]:  # deleted in this unit of work: not listed
                result.append(known[0])  # type: ignore[arg-type]
        return result

    def _tracked_entity(self, entity_cls: type[Entity], key: str) -> tuple[Entity, bool] | None:
        """``(entity, deleted)`` if this unit of work already holds that record."""
        namespace = entity_cls.namespace()
        for item in self._tracked:
            entity = item.entity
            if type(entity).namespace() == namespace and _key_of(entity) == key:
                return entity, item.deleted
        return None

    def add(self, entity: E) -> E:
        self._track(entity, new=True)
        return entity

    def remove(self, entity: Entity) -> None:
        for item in self._tracked:
            if item.entity is entity:
                item.deleted = True
                return
        raise EntityNotFound(f"{type(entity).__name__}: only records loaded in this event can be deleted")

    # --- commit / roll back ------------------------------------------------------------

    async def commit(self, ctx: CallContext) -> dict[str, Any]:
        """Validate and save what changed, commit every store, then publish the changes.

        Returns the signals patch of everything that changed (``{namespace: changes}``, and
        ``{namespace: {key: changes}}`` for records; ``None`` for a deleted record). A store
        that refuses before anything is durable rolls every store back (a ``ConcurrencyError``
        then means the event may run again); one failing after another store committed
        raises ``CommitIncomplete``.
        """
        with phase("commit"):
            facts, patch, incomplete, entries = await self._save_and_commit(ctx)
            if entries and self.journal_for is not None:
                durable = None if incomplete is None else incomplete[1]
                await append_after_commit(self.journal_for, entries, durable)
        with phase("publish"):
            before = self.publish_after
            if before is not None and not before.done():
                await asyncio.shield(before)
            if incomplete is not None:  # tabs still learn what was saved
                failure, durable = incomplete
                for repository, fact in facts:
                    if any(r is repository for r in durable):
                        await self.bus.publish(fact)
                raise failure
            for _, fact in facts:
                await self.bus.publish(fact)
            for item in self._tracked:
                for domain_event in item.entity.collect_events():
                    await self.bus.publish(domain_event)
        return patch

    async def _save_and_commit(
        self, ctx: CallContext
    ) -> tuple[_Facts, dict[str, Any], _Incomplete | None, Entries]:
        """Save what changed and commit the stores: the facts to publish, the signals patch,
        the failure of a commit that is partly durable (``None`` when all went well), and the
        journal entries to append now that the stores have committed."""
        facts: list[tuple[EntityRepository, EntityChanged]] = []
        written: list[EntityRepository] = []
        patch: dict[str, Any] = {}
        saved: list[Saved] | None = [] if self.commit_hooks else None  # only hooks look at it
        entries: Entries = []
        for item in list(self._tracked):
            entity = item.entity
            cls = type(entity)
            options = cls.options()
            if item.deleted:
                self._tracked.remove(item)
                if item.new:
                    continue
                key = entity._sm_key or ""
                repository = await self._repository(cls)
                await repository.delete(cls, key)
                _add(written, repository)
                if options.journal is not None:
                    entry = JournalEntry.of(entity, ctx, self.doing, item.public, {}, kind="delete")
                    entries.append((repository, cls, entry))
                patch.setdefault(options.namespace, {})[key] = None
                facts.append((repository, _fact(entity, ctx, {}, deleted=True)))
                if saved is not None:
                    saved.append(Saved(entity, item.fields, None))
                continue
            _revalidate_containers(entity)
            if not item.new and entity.__dict__ == item.fields:
                continue
            if item.new and options.private and entity._sm_owner is None:
                entity._sm_owner = ctx.session_id
            repository = await self._repository(cls)
            await repository.save(entity)
            _add(written, repository)
            after = entity.public_state()
            changes = after if item.new else changed_values(item.public, after)
            if saved is not None:
                saved.append(Saved(entity, {} if item.new else item.fields, entity.__dict__))
            if options.journal is not None:
                entries.append((repository, cls, self._entry(item, ctx, after)))
            item.fields, item.public = _snapshot(entity), after
            if changes or item.new:
                if not options.store.is_client:  # browser state: the tabs sync in the browser
                    facts.append((repository, _fact(entity, ctx, changes, created=item.new)))
                if options.scope == "id":
                    patch.setdefault(options.namespace, {})[entity._sm_key or ""] = changes
                else:
                    patch[options.namespace] = changes
            item.new = False
        for hook in self.commit_hooks if saved else ():
            participant = hook(saved)  # type: ignore[arg-type]
            if participant is not None:  # e.g. the files the entities now hold
                self._begun.append(participant)
                written.append(participant)
        await self._check_took(written)
        begun, self._begun = self._begun, []
        self._committed_for, self._begun_for = self._begun_for, {}
        try:
            later = await record_in_stores(entries)
        except BaseException:
            await _roll_back(begun)
            raise
        incomplete = await _commit_stores(begun, written)
        return facts, patch, incomplete, later

    def _entry(self, item: _Tracked, ctx: CallContext, after: dict[str, Any]) -> JournalEntry:
        entity = item.entity
        hidden = [
            name for name in type(entity).__starmodel_server_only__
            if item.new or item.fields.get(name) != entity.__dict__.get(name)
        ]
        kind = "create" if item.new else "change"
        before = {} if item.new else item.public
        return JournalEntry.of(entity, ctx, self.doing, before, after, hidden, kind=kind)

    async def _check_took(self, written: Sequence[EntityRepository]) -> None:
        """An event that started from a row still on its way to its store, and writes to
        another store too, commits only once that row is stored (else it is re-run: nothing of
        it is saved). A write to the row's own store alone is checked by that store."""
        took = self.took
        if took is None or took.settled is None:
            return
        own = self._begun_for.get(type(took.entity))
        if any(repository is not own for repository in written) and not await took.settled():
            raise ConcurrencyError("the state this event started from was never stored")

    async def rollback(self) -> None:
        self._open = False
        begun, self._begun = self._begun, []
        self._begun_for.clear()
        await _roll_back(begun)


async def _commit_stores(
    begun: list[EntityRepository], written: list[EntityRepository]
) -> tuple[CommitIncomplete, list[EntityRepository]] | None:
    """Prepare the stores written to (when there are several), then commit every begun
    store: those only read first, then those that decide at commit, then the prepared
    ones, those whose commit cannot fail last.

    Raises (after rolling back) when nothing is durable yet; returns the failure and the
    stores that did commit when one fails after another one's commit was durable.
    """
    if len(begun) == 1:  # one store (the usual case): its commit checks and applies at once
        try:
            await begun[0].commit()
        except BaseException:
            await _roll_back(begun)
            raise
        return None
    if len(written) > 1:
        try:
            for repository in written:
                await repository.prepare()
        except BaseException:
            await _roll_back(begun)
            raise
    order = [r for r in begun if not any(r is w for w in written)]
    order += sorted(written, key=lambda r: (not r.decides_at_commit, r.commit_cannot_fail))
    durable: list[EntityRepository] = []
    for index, repository in enumerate(order):
        try:
            await repository.commit()
        except BaseException as exc:
            await _roll_back(order[index:])
            if not durable or not isinstance(exc, Exception):
                raise
            return _incomplete(durable, repository, order[index + 1:], exc), durable
        if any(repository is w for w in written):
            durable.append(repository)
    return None


def _add(repositories: list[EntityRepository], repository: EntityRepository) -> None:
    for known in repositories:
        if known is repository:
            return
    repositories.append(repository)


async def _roll_back(repositories: list[EntityRepository]) -> None:
    """Roll back each of ``repositories``, even when one of them fails or is cancelled (the
    others must still release what they hold: memory's reserved entries, a plugin's locks)."""
    interrupted: BaseException | None = None
    for repository in repositories:
        try:
            await repository.rollback()
        except Exception:
            log.exception("rolling back %s failed", type(repository).__name__)
        except BaseException as exc:  # cancelled: finish releasing, then go on stopping
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


def _incomplete(
    durable: list[EntityRepository],
    failed: EntityRepository,
    rolled_back: list[EntityRepository],
    exc: Exception,
) -> CommitIncomplete:
    """The error (logged with the details) of a commit that failed after ``durable`` committed."""
    names = ", ".join(type(r).__name__ for r in durable)
    log.error(
        "an event was partly saved: %s committed, then %s failed to commit (%s: %s); "
        "rolled back: %s",
        names, type(failed).__name__, type(exc).__name__, exc,
        ", ".join(type(r).__name__ for r in rolled_back) or "nothing else",
    )
    return CommitIncomplete(
        "The change may be partly saved: a store failed while committing it; "
        "reload before trying again"
    )


def _fact(entity: Entity, ctx: CallContext, changes: dict[str, Any], *, created: bool = False,
          deleted: bool = False) -> EntityChanged:
    options = type(entity).options()
    keyed = options.scope == "id"
    return EntityChanged(
        namespace=options.namespace,
        key=_key_of(entity) or "",
        scope=options.scope,
        changes=changes,
        session_id=ctx.session_id if options.scope == "session" else None,
        # records go to every viewer, the calling tab included: its lists need the row too
        origin_tab=None if keyed else ctx.tab_id,
        origin_session=ctx.session_id,
        created=created,
        deleted=deleted,
        owner=entity._sm_owner if options.private else None,
    )


def _key_of(entity: Entity) -> str | None:
    """``entity._sm_key`` without pydantic's private-attribute lookup (a hot path)."""
    private = entity.__pydantic_private__
    return private.get("_sm_key") if private is not None else None


def _snapshot(entity: Entity) -> dict[str, Any]:
    values = dict(entity.__dict__)
    for name, value in values.items():
        if not isinstance(value, _IMMUTABLE):
            values[name] = copy.deepcopy(value)
    return values


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

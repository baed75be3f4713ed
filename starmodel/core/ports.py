"""The ports: what the application layer needs from storage and messaging."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from starmodel.core.entity import Entity
from starmodel.core.journal import JournalEntry, JournalSettings

__all__ = ["EntityRepository", "EventBus", "Handed", "Handler"]

E = TypeVar("E", bound=Entity)
Handler = Callable[[Any], Awaitable[None]]
"""``async handler(fact)``: what ``EventBus.subscribe`` runs for each published fact."""


@dataclass(frozen=True)
class Handed:
    """A record as one event's commit stored it, for the next event on it in this process.

    Attributes:
        entity: the record (a fresh entity, its version the one stored).
        token: what the store that made it needs to take it back (opaque to others).
        settled: ``None`` if the record is stored already; else it waits for the write still
            on its way and says whether it was stored (``False``: it never existed).
    """

    entity: Any
    token: Any = None
    settled: Callable[[], Awaitable[bool]] | None = None


class EntityRepository(ABC):
    """Stores entities by class and key, with a version for optimistic concurrency.

    Contract (checked by ``starmodel.testing.RepositoryContract``):

    - ``get`` returns a detached copy (changing it changes nothing stored) with
      ``_sm_key`` and ``_sm_version`` set, or ``None``.
    - ``save`` writes only if the stored version still equals ``entity._sm_version``
      (0 = must not exist yet), then bumps the version on the entity; otherwise it raises
      ``ConcurrencyError`` and writes nothing.
    - ``ttl`` (seconds, from the entity's options) is refreshed on every save.
    - for private entities (``model_config["private"]``) ``_sm_owner`` is stored with the
      record and ``list(..., owner=...)`` returns only that owner's records.

    Transactions: a unit of work calls ``begin`` before its first use of the repository, then
    reads and writes, then ends with ``commit`` or ``rollback``. When one event writes to
    several repositories, they are committed in two phases so that all of them apply or none:

    1. ``prepare`` on every repository written to: check that ``commit`` will succeed and hold
       what it will write (locks, reserved slots), or raise ``ConcurrencyError``,
       ``ValidationFailed`` or ``StoreUnavailable`` and hold nothing. After a successful
       ``prepare``, ``commit`` must not refuse: only an outage can still make it fail.
    2. ``commit`` on the stores that decide at commit (``decides_at_commit``) first, then on
       the prepared ones, those whose commit cannot fail (``commit_cannot_fail``) last. A
       refusal by a store that decides at commit rolls every other store back, so nothing
       of the event is kept and it may be run again.

    ``rollback`` (also after ``prepare``, or after a failed ``commit``) forgets the writes and
    releases what ``prepare`` held. A unit of work that writes to one repository only calls
    ``commit`` without ``prepare``: that commit then checks and applies in one step.
    """

    decides_at_commit: ClassVar[bool] = False
    """``commit`` is one atomic check-and-write that may still refuse with
    ``ConcurrencyError`` (Redis's script); such a store may leave ``prepare`` empty."""

    commit_cannot_fail: ClassVar[bool] = False
    """``commit`` only changes this process's memory (or the answer): after ``prepare`` it
    cannot fail at all, so it comes after the stores that might."""

    @abstractmethod
    async def get(self, entity_cls: type[E], key: str) -> E | None:
        """A detached copy of the entity stored under ``key``, or ``None``."""

    @abstractmethod
    async def save(self, entity: Entity) -> None:
        """Insert or update ``entity`` if its version is still the stored one, else raise
        ``ConcurrencyError``; an entity of a keyed class without a key gets one."""

    @abstractmethod
    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        """Remove the entity stored under ``key``; ``True`` if there was one."""

    @abstractmethod
    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        """Detached copies in key order (with ``owner``: only that owner's records)."""

    async def record(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> bool:
        """Write journal entries (and prune by ``settings``) in this transaction, so that they
        commit or roll back with the changes; ``False``: this store keeps no journal of its
        own, and the unit of work appends them to the app's journal after the commit. Called
        after the unit's last ``save``/``delete`` and before ``prepare``/``commit``."""
        return False

    async def begin(self) -> None:  # noqa: B027 - optional hook
        """Start a transaction (stores without transactions ignore it)."""

    async def prepare(self) -> None:  # noqa: B027 - optional hook
        """Check that ``commit`` will succeed and hold what it will write (see the class
        docstring); raise and hold nothing otherwise."""

    async def commit(self) -> None:  # noqa: B027 - optional hook
        """Make the writes since ``begin`` durable."""

    async def rollback(self) -> None:  # noqa: B027 - optional hook
        """Forget the writes since ``begin`` and release what ``prepare`` held."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections when the app stops."""

    # --- optional: a plain event's shorter way (a store without one ignores these) -------

    def read_optimistically(self, queued: Callable[[Handed], None] | None = None) -> None:  # noqa: B027
        """Called before the first read when the unit of work's caller re-runs the event if a
        version check refuses its write (a plain event's first attempt): reads need not lock,
        and one write may commit on its own, provided the commit checks the version read.

        A store whose ``commit`` queues that write behind others on the same record calls
        ``queued(handed)`` once it is queued, before waiting for it: the next event on the
        record may then start from ``handed`` (whose ``settled`` tells whether it was stored).
        """

    def take_handed(self, handed: Handed) -> bool:
        """Offered before the first read: a record as this store's ``handed`` (or ``queued``)
        gave it for the previous event on it in this process. Return ``True`` to take it as
        read from the store at its version (the commit must then check that version, and fail
        if ``handed`` was never stored); ``False`` (the default) and the unit of work reads it."""
        return False

    def handed(self, entity_cls: type[Entity], key: str) -> Handed | None:
        """After ``commit``: the record as this commit stored it, if known without asking the
        store; ``None`` (the default) otherwise."""
        return None


class EventBus(ABC):
    """Publishes facts (``EntityChanged``, domain events) to subscribers by type.

    A handler subscribed normally runs once per fact, in the process that published it.
    One subscribed with ``everywhere=True`` runs in every server process that shares the
    bus (what live streams need: each process pushes to the tabs connected to it); with a
    bus that spans no processes the two are the same.
    """

    @abstractmethod
    def subscribe(self, event_type: type, handler: Handler, *, everywhere: bool = False) -> None:
        """Run ``handler`` for every published fact of ``event_type`` (subclasses included)."""

    @abstractmethod
    async def publish(self, event: Any) -> None:
        """Deliver ``event`` to its subscribers; one failing handler never stops the others."""

    async def history(self, epoch: str, after: int, limit: int) -> list[tuple[tuple[str, int], Any]] | None:
        """The facts this process has delivered since position ``(epoch, after)``, with their
        positions, if the bus keeps them (at most ``limit``; else ``None``). Live streams use
        it to catch up a tab that was connected to another process."""
        return None

    def on_resync(self, handler: Callable[[], None]) -> None:  # noqa: B027 - optional hook
        """Call ``handler`` whenever facts may have been missed (a bus spanning processes
        that lost its connection for a while); live streams then resync their tabs."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop delivering (release connections)."""

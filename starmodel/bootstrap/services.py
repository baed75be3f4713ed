"""The services an app runs on, built from settings: stores, bus, dispatcher.

Nothing is built at import time; ``build_services(settings)`` (which ``StarModel(...)`` calls)
does it, and connections are opened on first use.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starmodel.adapters.driven.files import file_store
from starmodel.adapters.driven.journal.memory import MemoryJournal
from starmodel.adapters.driven.plugins import persistence_backend
from starmodel.adapters.driven.presence import MemoryPresenceTracker
from starmodel.adapters.driven.stores.client import ClientRepository
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driven.stores.queries import ScanRecordFinder, SqlRecordFinder
from starmodel.adapters.driven.stores.sql import DEFAULT_URL, SqlDatabase, SqlRepository, normalize_url
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.app.bus import InProcessBus
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.file_commits import FileCommits
from starmodel.app.jobs import Claim
from starmodel.app.placement import kept_in
from starmodel.app.presence import PresenceService
from starmodel.app.settings import Settings
from starmodel.app.uow import UnitOfWork
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError
from starmodel.core.files import FileStore
from starmodel.core.journal import Journal
from starmodel.core.messages import CancelRequested
from starmodel.core.ports import EntityRepository, EventBus
from starmodel.core.presence import PresenceTracker
from starmodel.core.queries import RecordFinder
from starmodel.core.store import StateStore

if TYPE_CHECKING:  # Redis's modules are imported when an app uses Redis
    from starmodel.adapters.driven.stores.redis import RedisConnection
    from starmodel.adapters.driven.stores.redis_claims import RedisRunClaims

__all__ = ["SECRET_FILE", "Services", "build_services", "development_secret", "redis_connection"]

SECRET_FILE = Path(".starmodel") / "secret_key"


@dataclass
class Services:
    """What the adapters need, built from settings.

    ``repositories`` are shared by every unit of work (the browser stores, which hold
    nothing); the other stores get a fresh repository per unit of work from ``factories``
    (memory: a view of the app's one ``memory`` store that keeps the unit's writes until it
    commits).
    """

    settings: Settings
    bus: EventBus
    repositories: dict[StateStore, EntityRepository]
    dispatcher: Dispatcher
    factories: dict[StateStore, Callable[[], EntityRepository]] = field(default_factory=dict)
    memory: MemoryStore = field(default_factory=MemoryStore)
    presence: PresenceService | None = None
    _database: SqlDatabase | None = None
    _redis: RedisConnection | None = None
    _backends: dict[str, Callable[[], EntityRepository]] = field(default_factory=dict)
    _files: FileStore | None = None

    @property
    def files(self) -> FileStore:
        """Where file fields keep their files (``STARMODEL_FILES``), set up on first use."""
        if self._files is None:
            self._files = file_store(self.settings)
        return self._files
    _journals: dict[str, Journal] = field(default_factory=dict)

    def journal_for(self, entity_cls: type[Entity]) -> Journal:
        """Where ``entity_cls``'s journal is kept: a table beside SQL entities, Redis for
        Redis entities (and the others when ``REDIS_URL`` is set), else this process's memory."""
        store = kept_in(entity_cls, self.settings)
        if store is StateStore.SERVER_SQL:
            kind = "sql"
        elif store is StateStore.SERVER_REDIS or self.settings.redis_url:
            kind = "redis"
        else:
            kind = "memory"
        journal = self._journals.get(kind)
        if journal is None:
            journal = self._journals[kind] = self._new_journal(kind)
        return journal

    def _new_journal(self, kind: str) -> Journal:
        if kind == "sql":
            from starmodel.adapters.driven.journal.sql import SqlJournal

            return SqlJournal(self.database)
        if kind == "redis":
            from starmodel.adapters.driven.journal.redis import RedisJournal

            return RedisJournal(self.redis)
        return MemoryJournal()

    def finder_for(self, entity_cls: type[Entity]) -> RecordFinder:
        """What answers list queries (search, sort, pages) for ``entity_cls``'s store."""
        if entity_cls.options().store is StateStore.SERVER_SQL:
            return SqlRecordFinder(self.database)
        return ScanRecordFinder(lambda: self.repository_for(entity_cls))

    def repository_for(self, entity_cls: type[Entity]) -> EntityRepository:
        """A repository for ``entity_cls`` (a new one for stores with transactions)."""
        store = kept_in(entity_cls, self.settings)
        if store is StateStore.CUSTOM:
            return self.backend(entity_cls.options().backend or "")()
        shared = self.repositories.get(store)
        if shared is not None:
            return shared
        factory = self.factories.get(store)
        if factory is None:
            raise ConfigurationError(
                f"{entity_cls.__name__} uses store {store.name}, which this app has not set up"
            )
        return factory()

    def unit_repositories(self) -> Callable[[type[Entity]], EntityRepository]:
        """Repositories for one unit of work: one per store, created on first use."""
        chosen: dict[tuple[StateStore, str | None], EntityRepository] = {}

        def repository_for(entity_cls: type[Entity]) -> EntityRepository:
            options = entity_cls.options()
            store = kept_in(entity_cls, self.settings)
            slot = (store, options.backend if store is StateStore.CUSTOM else None)
            repository = chosen.get(slot)
            if repository is None:
                repository = chosen[slot] = self.repository_for(entity_cls)
            return repository

        return repository_for

    @property
    def database(self) -> SqlDatabase:
        """The SQL database (``DATABASE_URL``, else a SQLite file), connected on first use."""
        if self._database is None:
            self._database = SqlDatabase(
                self.settings.database_url or DEFAULT_URL,
                timeout=self.settings.store_timeout,
                probe_interval=self.settings.probe_interval,
            )
        return self._database

    def backend(self, name: str) -> Callable[[], EntityRepository]:
        """The repository factory of the persistence plugin ``name`` (loaded on first use)."""
        factory = self._backends.get(name)
        if factory is None:
            try:
                made = persistence_backend(name)(self.settings)
            except LookupError as exc:
                raise ConfigurationError(str(exc)) from None
            except Exception as exc:  # the plugin's own failure to start
                raise ConfigurationError(f"persistence plugin {name!r} failed to start: {exc}") from None
            if not callable(made):
                raise ConfigurationError(
                    f"persistence plugin {name!r} must return a repository factory, not {made!r}"
                )
            factory = self._backends[name] = made
        return factory

    @property
    def redis(self) -> RedisConnection:
        """The Redis server (``REDIS_URL``, else the local default), connected on first use."""
        if self._redis is None:
            from starmodel.adapters.driven.stores.redis import DEFAULT_REDIS_URL

            self._redis = redis_connection(self.settings, self.settings.redis_url or DEFAULT_REDIS_URL)
        return self._redis

    @property
    def tick_claim(self) -> Claim | None:
        """How a periodic job's tick is claimed by one process (with Redis), else ``None``."""
        return self._redis.claim_tick if self._redis is not None else None

    async def close(self) -> None:
        if self.presence is not None:  # its viewers leave while the bus still carries it
            await self.presence.stop()
        await self.bus.close()
        if self._database is not None:
            await self._database.dispose()
        if self._redis is not None:
            await self._redis.close()


def redis_connection(settings: Settings, url: str) -> RedisConnection:
    """The app's Redis, with the timeouts of ``settings``."""
    from starmodel.adapters.driven.stores.redis import RedisConnection

    return RedisConnection(
        url,
        prefix=settings.redis_prefix,
        timeout=settings.store_timeout,
        probe_interval=settings.probe_interval,
    )


def development_secret(path: Path = SECRET_FILE) -> str:
    """A per-project secret kept on disk, so sessions survive restarts in development."""
    if path.is_file():
        existing = path.read_text().strip()
        if existing:
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    os.chmod(path, 0o600)
    return value


def build_services(settings: Settings) -> Services:
    """Wire stores and the bus into a dispatcher; one fresh unit of work per event."""
    if settings.database_url:
        normalize_url(settings.database_url)  # a bad DATABASE_URL fails here, in one line
    redis: RedisConnection | None = None
    bus: EventBus = InProcessBus()
    if settings.redis_url:
        from starmodel.adapters.driven.bus.redis import RedisBus
        from starmodel.adapters.driven.stores.redis import check_redis_url
        from starmodel.adapters.driving.datastar.sse import DatastarOutputsCodec

        check_redis_url(settings.redis_url)  # likewise a bad REDIS_URL
        redis = redis_connection(settings, settings.redis_url)
        bus = RedisBus(redis, timeout=settings.bus_timeout, outputs=DatastarOutputsCodec())
    repositories: dict[StateStore, EntityRepository] = {}
    services: Services
    commit_hooks = (FileCommits(lambda: services.files),)  # files commit with their entities

    def uow_factory(entity_cls: type[Entity]) -> UnitOfWork:
        return UnitOfWork(services.unit_repositories(), bus, commit_hooks, services.journal_for)

    claims = _run_claims(redis) if redis is not None else None
    tracker = _redis_presence(redis) if redis is not None else MemoryPresenceTracker()
    presence = PresenceService(tracker, bus, ttl=settings.presence_ttl, beat=settings.presence_beat)
    dispatcher = Dispatcher(
        uow_factory, read_json=read_json, retries=settings.event_retries, bus=bus,
        claims=claims, renew_every=claims.renew_every if claims is not None else 0.0, presence=presence,
    )
    bus.subscribe(CancelRequested, dispatcher.on_cancel_requested, everywhere=True)
    services = Services(settings, bus, repositories, dispatcher, presence=presence, _redis=redis)
    memory = services.memory
    services.factories[StateStore.SERVER_MEMORY] = lambda: MemoryRepository(memory)
    services.factories[StateStore.SERVER_SQL] = lambda: SqlRepository(services.database)
    services.factories[StateStore.SERVER_REDIS] = lambda: _redis_repository(services)
    client = ClientRepository()  # holds nothing: the state comes with each request
    repositories[StateStore.CLIENT_SESSION] = repositories[StateStore.CLIENT_LOCAL] = client
    return services


def _run_claims(redis: RedisConnection) -> RedisRunClaims:
    from starmodel.adapters.driven.stores.redis_claims import RedisRunClaims

    return RedisRunClaims(redis)


def _redis_presence(redis: RedisConnection) -> PresenceTracker:
    from starmodel.adapters.driven.presence.redis import RedisPresenceTracker

    return RedisPresenceTracker(redis)


def _redis_repository(services: Services) -> EntityRepository:
    from starmodel.adapters.driven.stores.redis import RedisRepository

    return RedisRepository(services.redis)

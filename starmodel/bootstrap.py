"""The composition root: settings -> stores, bus, unit-of-work factory, dispatcher, web app.

Nothing is built at import time; ``StarModel(...)`` (or ``build_services``) does it.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasthtml.common import FastHTML
from sqlalchemy.exc import SQLAlchemyError

from starmodel.adapters.driven.bus.redis import RedisBus
from starmodel.adapters.driven.plugins import persistence_backend
from starmodel.adapters.driven.rates import call_counter
from starmodel.adapters.driven.stores.client import ClientRepository
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driven.stores.queries import ScanRecordFinder, SqlRecordFinder
from starmodel.adapters.driven.stores.redis import (
    DEFAULT_REDIS_URL,
    RedisConnection,
    RedisRepository,
    check_redis_url,
)
from starmodel.adapters.driven.stores.redis_claims import RedisRunClaims
from starmodel.adapters.driven.stores.sql import DEFAULT_URL, SqlDatabase, SqlRepository, normalize_url
from starmodel.adapters.driving.datastar.sse import DatastarOutputsCodec
from starmodel.adapters.driving.operations import install_operations
from starmodel.adapters.driving.ui.admin import Admin
from starmodel.adapters.driving.ui.registry import UiRegistry
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.adapters.driving.web.fasthtml import WebApp
from starmodel.adapters.driving.web.health import Readiness, service_checks
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.adapters.driving.web.rate_limits import EventRateLimiter
from starmodel.app.bus import InProcessBus
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.placement import kept_in
from starmodel.app.records import RecordService
from starmodel.app.settings import Settings
from starmodel.app.uow import UnitOfWork
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError, StoreUnavailable
from starmodel.core.messages import CancelRequested
from starmodel.core.policy import Rule
from starmodel.core.ports import EntityRepository, EventBus
from starmodel.core.queries import RecordFinder
from starmodel.core.store import StateStore

__all__ = ["Services", "StarModel", "build_services", "development_secret"]

SECRET_FILE = Path(".starmodel") / "secret_key"
log = logging.getLogger("starmodel")


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
    _database: SqlDatabase | None = None
    _redis: RedisConnection | None = None
    _backends: dict[str, Callable[[], EntityRepository]] = field(default_factory=dict)

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
            self._redis = redis_connection(self.settings, self.settings.redis_url or DEFAULT_REDIS_URL)
        return self._redis

    async def close(self) -> None:
        await self.bus.close()
        if self._database is not None:
            await self._database.dispose()
        if self._redis is not None:
            await self._redis.close()


def redis_connection(settings: Settings, url: str) -> RedisConnection:
    """The app's Redis, with the timeouts of ``settings``."""
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
        check_redis_url(settings.redis_url)  # likewise a bad REDIS_URL
        redis = redis_connection(settings, settings.redis_url)
        bus = RedisBus(redis, timeout=settings.bus_timeout, outputs=DatastarOutputsCodec())
    repositories: dict[StateStore, EntityRepository] = {}
    services: Services

    def uow_factory(entity_cls: type[Entity]) -> UnitOfWork:
        return UnitOfWork(services.unit_repositories(), bus)

    claims = RedisRunClaims(redis) if redis is not None else None
    dispatcher = Dispatcher(
        uow_factory, read_json=read_json, retries=settings.event_retries, bus=bus,
        claims=claims, renew_every=claims.renew_every if claims is not None else 0.0,
    )
    bus.subscribe(CancelRequested, dispatcher.on_cancel_requested, everywhere=True)
    services = Services(settings, bus, repositories, dispatcher, _redis=redis)
    memory = services.memory
    services.factories[StateStore.SERVER_MEMORY] = lambda: MemoryRepository(memory)
    services.factories[StateStore.SERVER_SQL] = lambda: SqlRepository(services.database)
    services.factories[StateStore.SERVER_REDIS] = lambda: RedisRepository(services.redis)
    client = ClientRepository()  # holds nothing: the state comes with each request
    repositories[StateStore.CLIENT_SESSION] = repositories[StateStore.CLIENT_LOCAL] = client
    return services


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _caller_package() -> str:
    """The top-level package of the code that called ``StarModel(...)``."""
    frame = sys._getframe(2)
    name = str(frame.f_globals.get("__name__", "__main__"))
    return name.split(".", 1)[0]


class StarModel(WebApp):
    """A StarModel application: a FastHTML app serving your entities' events, live.

    Args:
        app: attach to this FastHTML app instead of creating one.
        entities: serve only these entity classes.
        packages: discover entities in these top-level packages (default: the package of the
            module that creates the app, e.g. ``myapp`` for ``myapp.main``).
        title: page title.
        settings: a full ``Settings``; otherwise read from the environment plus ``options``.
        **options: setting overrides, e.g. ``secret_key=...``, ``assets="local"``.

    Example:

        sm = StarModel()
        app, rt = sm.app, sm.app.route
    """

    def __init__(
        self,
        app: FastHTML | None = None,
        *,
        entities: Iterable[type[Entity]] | None = None,
        packages: Iterable[str] | None = None,
        title: str = "StarModel",
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        if entities is None and packages is None:
            packages = [_caller_package()]
        if settings is None:
            settings = Settings.from_env(**options)
        elif options:
            settings = settings.with_(**options)
        if not settings.secret_key:
            settings = settings.with_(secret_key=development_secret())
        self.services = build_services(settings)
        super().__init__(
            settings,
            self.services.dispatcher,
            self.services.bus,
            app=app,
            entities=entities,
            packages=packages,
            title=title,
        )

        self._ui: UiRegistry | None = None
        self._record_service = RecordService(self.services.dispatcher, self.services.finder_for)
        self.rate_limiter = EventRateLimiter(call_counter(settings.redis_url, lambda: self.services.redis))
        if self.services._redis is not None:  # each tick of a periodic job runs in one process
            self.jobs.claim = self.services._redis.claim_tick
        self.readiness = Readiness.of(self, service_checks)  # /_starmodel/health and /ready
        self.startup_hooks.append(self._check_backends)
        self.startup_hooks.append(self._prepare_database)
        self.startup_hooks.append(self._connect_redis)
        self.shutdown_hooks.append(self.services.close)
        bus_tracer = install_operations(self)  # request ids; logs, metrics, traces as the settings ask
        if bus_tracer is not None and isinstance(self.services.bus, RedisBus):
            self.services.bus.tracer = bus_tracer  # facts carry their trace to other processes

    @property
    def ui(self) -> UiRegistry:
        """The generated UI of this app (views, CRUD pages, JSON APIs, admin)."""
        if self._ui is None:
            self._ui = UiRegistry(self)
        return self._ui

    def views(self, entity_cls: type[Entity], views_class: type[EntityViews] | None = None) -> EntityViews:
        """The generated form, list and detail view of ``entity_cls``, to use in your own pages
        (``views.form()``, ``await views.table_for(request)``, ``views.detail(record)``); its
        create / update / delete routes follow the entity's policy."""
        return self.ui.views(entity_cls, views_class)

    def crud(
        self,
        entity_cls: type[Entity],
        *,
        path: str | None = None,
        api: str | bool = True,
        views_class: type[EntityViews] | None = None,
    ) -> EntityViews:
        """Generated pages for a record entity (list with search, sort and pages; new;
        detail; edit; delete) at ``path`` (default ``/<plural>``, e.g. ``/products``), and a
        JSON API at ``api`` (default ``/api/<plural>``; ``False`` for none), described at
        ``/api/openapi.json``. Both follow the entity's ``policy``."""
        return self.ui.crud(entity_cls, path=path, api=api, views_class=views_class)

    def admin(self, *, path: str = "/admin", allow: Rule | None = None, title: str = "Admin") -> Admin:
        """An admin area at ``path`` listing every entity of the app; only callers ``allow``
        accepts may use it (default: a signed-in user with ``is_staff``)."""
        return self.ui.admin(path=path, allow=allow, title=title)

    def sql_entities(self) -> list[type[Entity]]:
        return [cls for cls in self.entities() if cls.options().table]

    async def _prepare_database(self) -> None:
        """At start: without migrations, create missing tables (and say so); with migrations,
        warn about tables they have not created yet. An unreachable database is one log line:
        the app still serves, and SQL events answer 503 until it is back."""
        entities = self.sql_entities()
        if not entities:
            return
        database = self.services.database
        try:
            if (Path(self.settings.migrations_dir) / "env.py").is_file():
                missing = await database.missing_tables(entities)
                if missing:
                    log.warning(
                        "tables %s do not exist yet: run `starmodel migrate`", ", ".join(missing)
                    )
                return
            created = await database.create_tables(entities)
        except (OSError, SQLAlchemyError) as exc:
            log.error("database unreachable at %s: %s", database.url.split("@")[-1], _one_line(exc))
            return
        if created:
            log.warning(
                "created tables %s (no migrations yet: `starmodel migrate` makes the first and applies it)",
                ", ".join(created),
            )

    def custom_entities(self) -> list[type[Entity]]:
        return [cls for cls in self.entities() if cls.options().store is StateStore.CUSTOM]

    def check_backends(self) -> list[str]:
        """Why entities on plugin stores cannot run (one line each; empty when all is well)."""
        problems = []
        for cls in self.custom_entities():
            try:
                self.services.backend(cls.options().backend or "")
            except ConfigurationError as exc:
                problems.append(f"{cls.__name__}: {exc}")
        return problems

    async def _check_backends(self) -> None:
        for problem in self.check_backends():
            log.error("%s (its events fail until the plugin is installed)", problem)

    def redis_entities(self) -> list[type[Entity]]:
        """Entities kept in Redis (``SERVER_REDIS``, and global memory ones when REDIS_URL is set)."""
        return [cls for cls in self.entities() if kept_in(cls, self.settings) is StateStore.SERVER_REDIS]

    async def _connect_redis(self) -> None:
        """At start: subscribe the bus (if it runs over Redis) and check that Redis answers
        when entities live there. Redis down is one log line, never a failed start: the bus
        delivers within this process and retries; Redis events answer 503 until it is back."""
        bus = self.services.bus
        if isinstance(bus, RedisBus):
            await bus.wait_connected(3.0)  # a bus that cannot connect says so itself
        if self.redis_entities():
            try:
                await self.services.redis.ping()
            except StoreUnavailable as exc:
                log.error("%s: events of %s answer 503 until it is back", exc,
                          ", ".join(cls.__name__ for cls in self.redis_entities()))

    def subscribe(self, event_type: type, handler: Callable[[Any], Any], *, everywhere: bool = False) -> None:
        """Run ``async handler(event)`` for every published ``event_type`` (after commit):
        once, in the process where it happened; with ``everywhere=True`` in every server
        process sharing the bus (to push something to the tabs each one holds)."""
        self.services.bus.subscribe(event_type, handler, everywhere=everywhere)

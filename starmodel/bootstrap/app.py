"""``StarModel``: the application facade. It holds the parts (services, read side, job runner,
server-side calls, web adapter) and offers them to the app's code as one object."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from fasthtml.common import FastHTML
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from starmodel.adapters.driven.rates import call_counter
from starmodel.adapters.driving.live.lists import LiveLists
from starmodel.adapters.driving.live.stream import LiveHub, LiveStream
from starmodel.adapters.driving.operations import install_operations
from starmodel.adapters.driving.ui.admin import Admin
from starmodel.adapters.driving.ui.presence import presence_element
from starmodel.adapters.driving.ui.registry import UiRegistry
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.adapters.driving.web.fasthtml import WebApp
from starmodel.adapters.driving.web.health import Readiness, service_checks
from starmodel.adapters.driving.web.identity import AuthHooks, UserLoader
from starmodel.adapters.driving.web.rate_limits import EventRateLimiter
from starmodel.adapters.driving.web.requests import EventRequest
from starmodel.adapters.driving.web.served_assets import ServedAssets
from starmodel.adapters.driving.web.shutdown import GracefulStop
from starmodel.adapters.driving.web.uploads import install_uploads
from starmodel.app.calls import ServerCalls
from starmodel.app.catalog import EntityCatalog
from starmodel.app.crud import CrudService
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.jobs import JobRunner
from starmodel.app.journal import JournalService
from starmodel.app.placement import kept_in
from starmodel.app.presence import PresenceService, address_of
from starmodel.app.reads import EntityReads
from starmodel.app.settings import Settings
from starmodel.app.uploads import Uploads
from starmodel.bootstrap.services import build_services, development_secret
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError, StoreUnavailable
from starmodel.core.events import BoundEvent, EventSpec
from starmodel.core.policy import Rule
from starmodel.core.ports import EventBus
from starmodel.core.presence import Viewer
from starmodel.core.store import StateStore

__all__ = ["StarModel"]

E = TypeVar("E", bound=Entity)
log = logging.getLogger("starmodel")


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _caller_package() -> str:
    """The top-level package of the code that called ``StarModel(...)``."""
    frame = sys._getframe(2)
    name = str(frame.f_globals.get("__name__", "__main__"))
    return name.split(".", 1)[0]


class StarModel:
    """A StarModel application: a FastHTML app serving your entities' events, live.

    It holds the parts: the services (stores, bus, dispatcher), the read side, the job runner
    and the web adapter (``sm.web``) that serves them over HTTP.

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
        self.settings = settings
        self.services = build_services(settings)
        self.catalog = EntityCatalog(entities, packages)
        self.reads = EntityReads(self.services.dispatcher.uow_factory)
        self.crud_service = CrudService(self.services.dispatcher, self.services.finder_for)
        """Generated CRUD (list / get / create / update / delete, with the entities' policies)."""
        self.journal = JournalService(
            self.services.dispatcher.uow_factory, self.services.dispatcher.turn, self.services.journal_for
        )
        """History and undo of journaled entities (``model_config["journal"]``)."""
        # with Redis, each tick of a periodic job runs in one process
        self.jobs = JobRunner(claim=self.services.tick_claim)
        self._calls = ServerCalls(self.services.dispatcher, self.jobs)
        self.web = WebApp(
            settings,
            self.services.dispatcher,
            self.services.bus,
            catalog=self.catalog,
            reads=self.reads,
            crud_service=self.crud_service,
            journal=self.journal,
            rate_limiter=EventRateLimiter(call_counter(settings.redis_url, lambda: self.services.redis)),
            presence=self.services.presence,
            app=app,
            title=title,
        )
        self.app = self.web.app
        self.uploads = Uploads(lambda: self.services.files, self.services.bus, self.crud_service,
                               settings.secret_key or "")
        """File uploads to file fields (``docs/uploads.md``)."""
        install_uploads(self.web, self.uploads)
        self.app.state.starmodel = self  # `starmodel run` finds the StarModel behind an ASGI app
        self._ui: UiRegistry | None = None
        self.startup_hooks.extend([self.jobs.start, self._check_backends, self._prepare_database,
                                   self._connect_redis])
        self.shutdown_hooks.extend([self.jobs.stop, self.services.close])
        self.readiness = Readiness.of(self, service_checks)  # /_starmodel/health and /ready
        bus_tracer = install_operations(self.web)  # request ids; logs, metrics, traces as the settings ask
        if bus_tracer is not None and hasattr(self.services.bus, "tracer"):
            self.services.bus.tracer = bus_tracer  # facts carry their trace to other processes

    # --- the parts ---------------------------------------------------------------------

    @property
    def dispatcher(self) -> Dispatcher:
        return self.services.dispatcher

    @property
    def bus(self) -> EventBus:
        return self.services.bus

    @property
    def packages(self) -> tuple[str, ...] | None:
        return self.catalog.packages

    @property
    def stopping(self) -> GracefulStop:
        """The app's clean stop (begun on SIGTERM; ``/_starmodel/ready`` answers 503 once it is)."""
        return self.web.stopping

    @property
    def hub(self) -> LiveHub:
        """The live streams of the tabs connected to this process."""
        return self.web.hub

    @property
    def live_lists(self) -> LiveLists:
        """The lists of records on the pages of this process's tabs that follow changes live."""
        return self.web.live_lists

    @property
    def records(self) -> LiveLists:
        """The former name of ``live_lists``."""
        return self.web.live_lists

    @property
    def page_assets(self) -> ServedAssets:
        """The page assets (Datastar, theme, CSS) the app serves and links from its pages."""
        return self.web.page_assets

    @property
    def rate_limiter(self) -> EventRateLimiter:
        """Counts calls of events that have a ``rate`` (in Redis with ``REDIS_URL``)."""
        return self.web.limiter

    @property
    def record_service(self) -> CrudService:
        """The former name of ``crud_service``."""
        return self.crud_service

    @property
    def startup_hooks(self) -> list[Callable[[], Awaitable[None]]]:
        """``async`` functions run, in order, when the app starts."""
        return self.web.startup_hooks

    @property
    def shutdown_hooks(self) -> list[Callable[[], Awaitable[None]]]:
        """``async`` functions run, in order, when the app stops."""
        return self.web.shutdown_hooks

    def entities(self) -> list[type[Entity]]:
        """The entity classes this app serves."""
        return self.catalog.entities()

    def include(self, *entity_classes: type[Entity]) -> None:
        """Serve these entities too (e.g. a plugin's own ``User``), wherever they are defined."""
        self.catalog.include(*entity_classes)

    def event_table(self) -> dict[tuple[str, str], tuple[type[Entity], EventSpec]]:
        """``(method, path) -> (entity class, event)`` of every event served."""
        return self.web.event_table()

    # --- auth hooks ----------------------------------------------------------------------

    def use_auth(
        self, load_user: UserLoader, *, login_url: str | None = None, logout_url: str | None = None
    ) -> None:
        """For an auth plugin: ``await load_user(request)`` gives the signed-in user of a
        request (``None`` for a visitor; ``ctx.user`` of the events whose ``allow`` rule,
        entity policy or ``rate`` needs it), ``login_url`` is where
        pages that need a signed-in user send visitors, ``logout_url`` where a sign-out button
        posts. A second plugin is refused."""
        self.web.use_auth(AuthHooks(load_user, login_url, logout_url))

    @property
    def user_loader(self) -> UserLoader | None:
        """The user loader an auth plugin gave (``use_auth``); setting it sets only that hook."""
        return self.web.auth.load_user

    @user_loader.setter
    def user_loader(self, load_user: UserLoader | None) -> None:
        self.web.auth = AuthHooks(load_user, self.web.auth.login_url, self.web.auth.logout_url)

    @property
    def login_url(self) -> str | None:
        """Where pages that need a signed-in user send visitors (``None`` without auth)."""
        return self.web.login_url

    @property
    def logout_url(self) -> str | None:
        """Where a sign-out button posts (``None`` without auth)."""
        return self.web.logout_url

    # --- requests ----------------------------------------------------------------------

    def session_id(self, request: Request | EventRequest) -> str:
        """The browser's session id, created (and set in the signed cookie) on first use."""
        return self.web.session_id(request)

    def context(self, request: Request | EventRequest) -> CallContext:
        return self.web.context(request)

    async def current_user(self, request: Request | EventRequest) -> Any:
        """The signed-in user of a request (``None`` when nobody is signed in, or the app has
        no auth plugin); looked up once per request."""
        return await self.web.current_user(request)

    async def call_context(self, request: Request | EventRequest) -> CallContext:
        """``context(request)`` with the signed-in user filled in."""
        return await self.web.call_context(request)

    def refuse_cross_site(self, request: Request | EventRequest, *, datastar: bool = True) -> str | None:
        """Why this request may not run an event, or ``None`` if it may (``datastar=False``:
        for JSON API calls, which need no Datastar header)."""
        return self.web.refuse_cross_site(request, datastar=datastar)

    # --- the generated UI ----------------------------------------------------------------

    @property
    def ui(self) -> UiRegistry:
        """The generated UI of this app (views, CRUD pages, JSON APIs, admin)."""
        if self._ui is None:
            self._ui = UiRegistry(self.web)
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
        """The app's SQL entities, and the journal's table when one of them keeps a journal."""
        found = [cls for cls in self.entities() if cls.options().table]
        if any(cls.options().journal is not None for cls in found):
            from starmodel.adapters.driven.journal.sql import JournalRow

            found.append(JournalRow)
        return found

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
        if self.settings.redis_url:
            from starmodel.adapters.driven.bus.redis import RedisBus

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

    # --- reading, calling, jobs ----------------------------------------------------------

    async def load(self, entity_cls: type[E], request: Request | None = None) -> E:
        """The entity instance a page request shows (session or global), for rendering."""
        scope = entity_cls.options().scope
        if scope == "session":
            if request is None:
                raise ConfigurationError(f"{entity_cls.__name__} is per session: pass the request")
            key = self.session_id(request)
        elif scope == "global":
            key = "global"
        else:
            raise ConfigurationError(f"{entity_cls.__name__} is addressed by key; load it by key")
        return await self.reads.load(entity_cls, key)

    async def find(self, entity_cls: type[E], key: Any, request: Request | None = None) -> E | None:
        """The record with this key, for rendering (``None`` if there is none, or if it is
        another session's private record: pass the page's ``request`` for private entities)."""
        owner = self.session_id(request) if request is not None else None
        return await self.reads.find(entity_cls, str(key), owner=owner)

    async def call(
        self,
        entity_cls: type[Entity],
        event_name: str,
        /,
        *,
        key: Any = None,
        session_id: str = "server",
        **params: Any,
    ) -> list[Any]:
        """Run an event from server code (a bus subscriber, a job) as a tab would: same
        validation, unit of work, retries and broadcast. Returns its outputs (every step's,
        for a streaming event). ``key`` picks a record; ``session_id`` the session of a
        session-scoped entity.

        Example: ``await sm.call(Activity, "log", text="Todo added")``
        """
        return await self._calls.call(entity_cls, event_name, key=key, session_id=session_id, **params)

    def every(
        self, seconds: float, target: BoundEvent | None = None, /, *, name: str | None = None, **params: Any
    ) -> Any:
        """Run something every ``seconds`` for as long as the app runs (runs never overlap;
        an error is logged and the next tick runs anyway).

        As a decorator, on a function (sync or async):

            @sm.every(1.0)
            async def sample():
                await sm.call(Chart, "add_point", value=read_sensor())

        Or with an event of a global entity (or of one record): ``sm.every(60, Stats.refresh)``,
        ``sm.every(5, Chart.add_point, value=0)``; it runs like ``sm.call``.
        With Redis configured, each tick runs in one server process only.
        """
        return self._calls.every(seconds, target, name=name, **params)

    # --- live --------------------------------------------------------------------------

    def live_list(
        self,
        entity_cls: type[Entity],
        records: Iterable[Entity],
        render: Callable[[Any], Any] | None = None,
        **attrs: Any,
    ) -> Any:
        """A list of records that follows every change live (see ``LiveLists.live_list``)."""
        return self.web.live_lists.live_list(entity_cls, records, render, **attrs)

    def row_view(self, entity_cls: type[Entity], *, container: str | None = None) -> Any:
        """Decorator registering how a record's row is drawn (see ``LiveLists.row_view``)."""
        return self.web.live_lists.row_view(entity_cls, container=container)

    def open_live_stream(
        self, session_id: str, tab_id: str, *, watch: Iterable[type[Entity]] = (), backlog: int | None = None,
        here: Iterable[tuple[type[Entity], Any]] = (), user: Any = None,
    ) -> tuple[LiveStream, AsyncGenerator[str, None]]:
        """A tab's live stream opened in this process, as ``GET /live`` opens one (see
        ``WebApp.open_live_stream``)."""
        return self.web.open_live_stream(
            session_id, tab_id, watch=watch, backlog=backlog, here=here, user=user
        )

    @property
    def presence(self) -> PresenceService:
        """Who is looking at which instance: ``await sm.presence.of(ticket)``,
        ``@sm.presence.describe`` (how a caller is shown)."""
        assert self.services.presence is not None
        return self.services.presence

    async def presence_view(
        self,
        target: type[Entity] | Entity,
        key: Any = None,
        *,
        render: Callable[[list[Viewer]], Any] | None = None,
    ) -> Any:
        """Who is looking at ``target`` (an instance, or a class and a key), drawn (avatars and
        a count, or ``render(viewers)``) and kept current; the tab showing it is one of them."""
        namespace, found = address_of(target, key)
        if render is not None:
            self.web.presence_renderers()[namespace] = render
        viewers = await self.presence.of(target, key)
        return presence_element(namespace, found, viewers, self.web.presence_renderers().get(namespace))

    async def list(
        self,
        entity_cls: type[E],
        request: Request | None = None,
        *,
        offset: int = 0,
        limit: int = 50,
    ) -> list[E]:
        """Records in key order, for rendering (a private entity's: the request's session's)."""
        if entity_cls.options().private and request is None:
            raise ConfigurationError(f"{entity_cls.__name__} is private: pass the page's request")
        owner = self.session_id(request) if request is not None else None
        return await self.reads.list(entity_cls, owner=owner, offset=offset, limit=limit)

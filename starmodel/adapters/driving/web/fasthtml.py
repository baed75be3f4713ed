"""The web adapter: the FastHTML app and its routes (events, live stream, client-state restore,
static files), the signed-in user of a request, and the app's lifespan.

It translates HTTP into dispatcher calls and dispatcher results into Datastar SSE; no business
rule lives here.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, cast

from fasthtml.common import Div, FastHTML
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from starmodel.adapters.driving.datastar.sse import (
    check_outputs,
    error_events,
    render_outputs,
)
from starmodel.adapters.driving.datastar.syntax import CLIENT_RESTORE_PATH
from starmodel.adapters.driving.live.http import (
    HANDOFF_KEY,
    HttpLiveStream,
    LiveResponse,
    Outbox,
    detach_live_streams,
)
from starmodel.adapters.driving.live.lists import WATCH_SIGNAL, LiveLists
from starmodel.adapters.driving.live.presence import LivePresence
from starmodel.adapters.driving.live.stream import LiveHub, LiveStream
from starmodel.adapters.driving.ui.presence import HERE_SIGNAL
from starmodel.adapters.driving.web.assets import ASSETS_PREFIX, STATIC_PREFIX
from starmodel.adapters.driving.web.client_restore import restore_answer
from starmodel.adapters.driving.web.event_route import EventRoute
from starmodel.adapters.driving.web.identity import USER_SCOPE_KEY, AuthHooks, session_id
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.adapters.driving.web.proxies import TrustedProxies
from starmodel.adapters.driving.web.rate_limits import EventRateLimiter
from starmodel.adapters.driving.web.request_checks import cross_site_refusal
from starmodel.adapters.driving.web.request_limits import RequestLimits
from starmodel.adapters.driving.web.requests import EventRequest, SSEAnswer, error_response
from starmodel.adapters.driving.web.security import SecurityHeaders, with_nonces
from starmodel.adapters.driving.web.served_assets import ServedAssets
from starmodel.adapters.driving.web.sessions import SignedCookieSessions
from starmodel.adapters.driving.web.shutdown import CANCEL_WAIT, GracefulStop, run_shutdown
from starmodel.adapters.driving.web.static_files import STATIC_DIR, no_favicon, serve_file
from starmodel.app.catalog import EntityCatalog
from starmodel.app.crud import CrudService
from starmodel.app.dispatcher import Dispatcher, EventResult
from starmodel.app.journal import JournalService
from starmodel.app.presence import PresenceService
from starmodel.app.reads import EntityReads
from starmodel.app.settings import Settings
from starmodel.core.actions import PatchSignals, toast
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ClientStateInvalid,
    ConfigurationError,
    StarModelError,
    ValidationFailed,
)
from starmodel.core.events import CANCEL_SUFFIX, EventSpec
from starmodel.core.messages import EntityChanged, EventOutputs
from starmodel.core.ports import EventBus

__all__ = ["LIVE_PATH", "WebApp"]

log = logging.getLogger("starmodel.web")

LIVE_PATH = "/_starmodel/live"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_TAB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class WebApp:
    """Mounts StarModel on a FastHTML app (a new one unless ``app`` is given): translates HTTP
    requests into calls of the application and its answers into HTTP.

    Args:
        settings: resolved settings (``Settings.from_env()``).
        dispatcher: runs events.
        bus: where committed changes are published (the live hub subscribes to it).
        catalog: the entity classes served.
        reads: the read side (what live lists resync from).
        crud_service: generated CRUD, for the generated UI and JSON API.
        journal: history and undo of journaled entities, for the admin.
        rate_limiter: counts calls of events that have a ``rate``.
        presence: who looks at which instance (tabs join what their page shows).
        app: an existing FastHTML app to attach to.
        title: default page title.
    """

    def __init__(
        self,
        settings: Settings,
        dispatcher: Dispatcher,
        bus: EventBus,
        *,
        catalog: EntityCatalog,
        reads: EntityReads,
        crud_service: CrudService | None = None,
        journal: JournalService | None = None,
        rate_limiter: EventRateLimiter | None = None,
        presence: PresenceService | None = None,
        app: FastHTML | None = None,
        title: str = "StarModel",
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.bus = bus
        self.catalog = catalog
        self.reads = reads
        self._table: dict[tuple[str, str], tuple[type[Entity], EventSpec]] | None = None
        self._table_version: tuple[int, int] = (-1, -1)
        self._cancel_paths: set[str] = set()
        self._paths: frozenset[str] = frozenset()
        self.hub = LiveHub(
            self._state_for_session,
            extra_loader=self._resync_lists,
            queue_size=settings.live_queue_size,
            replay_size=settings.live_replay,
            heartbeat=settings.live_heartbeat,
        )
        self.live_lists = LiveLists(self.hub, self.entities)
        self.live_outbox = Outbox()
        self.presence = LivePresence(self.hub, presence, self.entities) if presence is not None else None
        # every process pushes to the tabs connected to it
        self.hub.fact_handlers = [
            (EntityChanged, self.hub.on_entity_changed),
            (EntityChanged, self.live_lists.on_entity_changed),
            (EventOutputs, self.hub.on_event_outputs),
        ]
        for fact_type, handler in self.hub.fact_handlers:
            bus.subscribe(fact_type, handler, everywhere=True)
        self.hub.history = bus.history
        bus.on_resync(self.hub.resync_all)
        self.auth = AuthHooks()
        """What an auth plugin declared (``use_auth``): the user loader, sign-in and out URLs."""
        self._crud_service = crud_service
        self.journal = journal
        self.stopping = GracefulStop(self.hub, dispatcher, settings.shutdown_grace)
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = [self.stopping.drain]
        self.page_assets = ServedAssets(settings)
        # a nested list, which FastHTML flattens into each page: refreshing it shows at once
        headers = [self.page_assets.headers]
        footers = [
            Div(id="starmodel-toasts", cls="toast toast-end toast-bottom z-50"),
            Div(
                id="starmodel-live",
                data_init=(
                    f"@get('{LIVE_PATH}', {{retry: 'always', openWhenHidden: true, "
                    "retryMaxCount: 1000000000, retryMaxWait: 5000, "
                    f"filterSignals: {{include: /^({WATCH_SIGNAL}|{HERE_SIGNAL})\\./}}}})"
                ),
            ),
        ]
        if app is None:
            app = FastHTML(
                title=title,
                hdrs=headers,
                ftrs=footers,
                secret_key=settings.secret_key,
                session_cookie="starmodel_session",
                sess_cls=SignedCookieSessions,
                max_age=settings.session_max_age,
                default_hdrs=False,
                htmx=False,
                surreal=False,
                canonical=False,  # FastHTML's says https:// whatever the server speaks
            )
        else:
            app.hdrs = [*with_nonces(list(app.hdrs or [])), *headers]
            app.ftrs = [*list(app.ftrs or []), *footers]
        self.app = app
        app.add_middleware(RequestLimits, handles_itself=self._is_event)
        app.add_middleware(
            SecurityHeaders, csp=settings.csp, report_only=settings.csp_report_only,
            hsts_max_age=settings.hsts_max_age, cdn=settings.assets == "cdn",
        )
        app.add_middleware(TrustedProxies, proxies=settings.trusted_proxies)
        self.rate_limiter = rate_limiter
        """Counts calls of events that have a ``rate`` (given by the composition root: in
        Redis when the app has ``REDIS_URL``, else in memory)."""
        self._install_routes()
        self._wrap_lifespan()
        detach_live_streams(app, LIVE_PATH)

    # --- entities and routing ----------------------------------------------------------

    def entities(self) -> list[type[Entity]]:
        """The entity classes this app serves."""
        return self.catalog.entities()

    def event_table(self) -> dict[tuple[str, str], tuple[type[Entity], EventSpec]]:
        """``(method, path) -> (entity class, event)``, rebuilt when new entities appear."""
        version = self.catalog.version()
        if self._table is None or version != self._table_version:
            entities = self.entities()
            table: dict[tuple[str, str], tuple[type[Entity], EventSpec]] = {}
            namespaces: dict[str, type[Entity]] = {}
            for cls in entities:
                other = namespaces.setdefault(cls.namespace(), cls)
                if other is not cls:
                    raise ConfigurationError(
                        f"{other.__module__}.{other.__qualname__} and "
                        f"{cls.__module__}.{cls.__qualname__} share the namespace "
                        f"{cls.namespace()!r}; set model_config['namespace'] on one of them"
                    )
                for spec in cls.events().values():
                    table[(spec.method, spec.route_path(cls))] = (cls, spec)
                    if spec.background:
                        cancel = spec.route_path(cls) + CANCEL_SUFFIX
                        table[("post", cancel)] = (cls, spec)
                        self._cancel_paths.add(cancel)
            self._table, self._table_version = table, version
            self._paths = frozenset(path for (_, path) in table)
        return self._table

    def event_paths(self) -> frozenset[str]:
        """The paths of the event table (whatever their method)."""
        self.event_table()
        return self._paths

    def _is_event(self, method: str, path: str) -> bool:
        return (method.lower(), path) in self.event_table()

    def _install_routes(self) -> None:
        self.app.router.routes.insert(0, EventRoute(self))
        self.app.router.routes.insert(1, Route(LIVE_PATH, self.handle_live, methods=["GET"]))
        restore = CLIENT_RESTORE_PATH.format(namespace="{namespace}")
        self.app.router.routes.insert(1, Route(restore, self.handle_restore, methods=["POST"]))
        self.app.router.routes.insert(
            2, Route(STATIC_PREFIX + "/{name:path}", self.handle_static, methods=["GET"])
        )
        self.app.router.routes.insert(
            3, Route(ASSETS_PREFIX + "/{name:path}", self.page_assets.handle, methods=["GET"])
        )
        # last, so an app's own favicon wins; spares every page a 404 in the console
        self.app.router.routes.append(Route("/favicon.ico", no_favicon, methods=["GET"]))

    def _wrap_lifespan(self) -> None:
        inner = self.app.router.lifespan_context
        web = self

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with inner(app) as state:
                for hook in web.startup_hooks:
                    await hook()
                # what exists now (modules, classes, the app) lives as long as the process:
                # keep it out of the collector's full passes, which otherwise pause every
                # live stream for a long moment when thousands are open
                gc.freeze()
                try:
                    yield state
                finally:
                    web.stopping.begin()
                    # everything within the grace period and the cancelled runs' moment, plus
                    # two seconds for closing jobs, stores and the bus
                    await run_shutdown([*web.shutdown_hooks, web.bus.close],
                                       web.settings.shutdown_grace + CANCEL_WAIT + 2)

        self.app.router.lifespan_context = lifespan

    # --- identity ----------------------------------------------------------------------

    session_id = staticmethod(session_id)

    def use_auth(self, hooks: AuthHooks) -> None:
        """Take an auth plugin's hooks; a second plugin with other hooks is refused."""
        if self.auth.load_user is not None and hooks != self.auth:
            raise ConfigurationError("this app has an auth plugin already")
        self.auth = hooks

    @property
    def login_url(self) -> str | None:
        """Where pages that need a signed-in user send visitors (``None`` without auth)."""
        return self.auth.login_url

    @property
    def logout_url(self) -> str | None:
        """Where a sign-out button posts (``None`` without auth)."""
        return self.auth.logout_url

    def context(self, request: Request | EventRequest) -> CallContext:
        tab = request.headers.get("x-starmodel-tab")
        return CallContext(
            session_id=session_id(request),
            tab_id=tab if tab and _TAB_ID.match(tab) else None,
            user=request.scope.get("user"),
        )

    @property
    def limiter(self) -> EventRateLimiter:
        """The rate limiter of events with a ``rate``."""
        if self.rate_limiter is None:
            raise ConfigurationError("this app has no rate limiter; build it with StarModel(...)")
        return self.rate_limiter

    @property
    def crud_service(self) -> CrudService:
        """Generated CRUD (list / get / create / update / delete with policies), set up by the
        composition root."""
        if self._crud_service is None:
            raise ConfigurationError("this app has no record service; build it with StarModel(...)")
        return self._crud_service

    async def current_user(self, request: Request | EventRequest) -> Any:
        """The signed-in user of a request (``None`` when nobody is signed in, or the app has
        no auth plugin); looked up once per request."""
        scope = request.scope
        if USER_SCOPE_KEY in scope:
            return scope[USER_SCOPE_KEY]
        user = scope.get("user")
        if self.auth.load_user is not None:
            user = await self.auth.load_user(request)
        scope[USER_SCOPE_KEY] = user
        return user

    async def call_context(self, request: Request | EventRequest) -> CallContext:
        """``context(request)`` with the signed-in user filled in."""
        ctx = self.context(request)
        ctx.user = await self.current_user(request)
        return ctx

    def open_live_stream(
        self, session_id: str, tab_id: str, *, watch: Iterable[type[Entity]] = (), backlog: int | None = None,
        here: Iterable[tuple[type[Entity], Any]] = (), user: Any = None,
    ) -> tuple[LiveStream, AsyncGenerator[str, None]]:
        """A tab's live stream opened in this process, as ``GET /live`` opens one (the test
        client's ``watch()`` uses it): the stream (its ``pending`` messages, ``wakeup``,
        ``closed``) and its SSE body, whose first chunk is the tab's state and whose closing
        closes the stream. ``watch``: record classes whose changes it follows; ``backlog``:
        how many unread messages it may hold before it is dropped (default: the hub's);
        ``here``: ``(class, key)`` pairs whose presence it joins, as ``user`` if given."""
        wanted = {WATCH_SIGNAL: {cls.namespace(): True for cls in watch}}
        topics = self.live_lists.watched_topics(wanted, session_id)
        stream = self.hub.open(session_id, tab_id, join=False, watch=topics)
        if self.presence is not None and here:
            named: dict[str, dict[str, bool]] = {}
            for cls, key in here:
                named.setdefault(cls.namespace(), {})[str(key)] = True
            looking = self.presence.looking_at({HERE_SIGNAL: named}, session_id, user)
            self.presence.attach(stream, looking, CallContext(session_id, tab_id, user))
        if backlog is not None:
            stream.limit = backlog
        return stream, cast(AsyncGenerator[str, None], self.hub.events(stream, None))

    def presence_renderers(self) -> dict[str, Callable[[list[Any]], Any]]:
        """How each class's presence is drawn, by namespace (pushes use the same)."""
        return self.presence.renderers if self.presence is not None else {}

    async def _state_for_session(self, session_id: str) -> dict[str, Any]:
        return await self.dispatcher.current_state(self.entities(), session_id)

    async def _resync_lists(self, stream: LiveStream) -> str:
        async def records(entity_cls: type[Entity], owner: str | None, limit: int) -> list[Entity]:
            return await self.reads.list(entity_cls, owner=owner, limit=limit)

        return await self.live_lists.resync_body(stream.topics, records)

    # --- request checks ----------------------------------------------------------------

    def refuse_cross_site(self, request: Request | EventRequest, *, datastar: bool = True) -> str | None:
        """Why this request may not run an event, or ``None`` if it may (``datastar=False``:
        for JSON API calls, which need no Datastar header)."""
        return cross_site_refusal(request, self.settings.allowed_origins, datastar=datastar)

    # --- handlers ----------------------------------------------------------------------

    async def handle_event(self, request: EventRequest) -> Response | SSEAnswer:
        found = self.event_table().get((request.method.lower(), request.path))
        if found is None:
            allowed = sorted(m.upper() for (m, p) in self.event_table() if p == request.path)
            return PlainTextResponse(
                "Method not allowed", status_code=405, headers={"Allow": ", ".join(allowed)}
            )
        entity_cls, spec = found
        if request.path in self._cancel_paths:
            return await self.handle_cancel(request, entity_cls, spec)
        refusal = self.refuse_cross_site(request)
        if refusal:
            return error_response(403, refusal)
        namespace = entity_cls.namespace()
        try:
            signals, args = await request.signals_and_args()
            needs_user = _decides_on_user(entity_cls, spec)
            ctx = await self.call_context(request) if needs_user else self.context(request)
            if spec.rate is not None:
                await self.limiter.check(namespace, spec.name, spec.rate, ctx)
            result = await self.dispatcher.dispatch(entity_cls, spec, ctx, args, signals, check=check_outputs)
        except ClientStateInvalid as exc:
            return error_response(422, exc.message, exc.namespace, exc.errors, {exc.namespace: exc.reset})
        except ValidationFailed as exc:
            return error_response(422, exc.message, namespace, exc.errors)
        except StarModelError as exc:
            return error_response(exc.status_code, str(exc), retry_after=exc.retry_after)
        except ValueError as exc:
            return error_response(422, str(exc) or "Invalid value")
        except Exception as exc:
            log.exception("event %s.%s failed", entity_cls.__name__, spec.name)
            return error_response(500, self._failure_message(exc, "nothing was changed"))
        if result.stream is not None:
            return StreamingResponse(
                self._stream_body(entity_cls, result),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        outputs = _clear_field_errors(namespace, spec, result.outputs) if spec.params else result.outputs
        if not outputs:
            return Response(status_code=204)
        try:
            body = render_outputs(outputs, spec)  # once, after the commit
        except Exception as exc:  # a component that broke while being drawn
            log.exception("event %s.%s: its answer could not be drawn", entity_cls.__name__, spec.name)
            return error_response(500, self._failure_message(exc, "the change was saved; reload the page"))
        return SSEAnswer(200, body)

    async def _stream_body(self, entity_cls: type[Entity], result: EventResult) -> AsyncIterator[str]:
        assert result.stream is not None
        namespace = entity_cls.namespace()
        try:
            async for outputs in result.stream:
                yield render_outputs(outputs, result.spec)
        except ValidationFailed as exc:
            yield error_events(exc.message, namespace=namespace, field_errors=exc.errors)
        except StarModelError as exc:
            yield error_events(str(exc))
        except ValueError as exc:
            yield error_events(str(exc) or "Invalid value")
        except Exception as exc:
            log.exception("event %s.%s failed", entity_cls.__name__, result.spec.name)
            yield error_events(self._failure_message(exc, "the last step was not saved"))

    async def handle_cancel(
        self, request: EventRequest, entity_cls: type[Entity], spec: EventSpec
    ) -> SSEAnswer:
        """``POST <event path>/cancel``: stop that background event on the caller's entity."""
        refusal = self.refuse_cross_site(request)
        if refusal:
            return error_response(403, refusal)
        try:
            _, args = await request.signals_and_args()
            await self.dispatcher.cancel(entity_cls, spec, await self.call_context(request), args)
        except StarModelError as exc:
            return error_response(exc.status_code, str(exc), retry_after=exc.retry_after)
        return SSEAnswer(200, render_outputs([toast(f"Stopping {spec.label}…", "info")]))

    def _failure_message(self, exc: Exception, consequence: str) -> str:
        """The toast for an unexpected error: its text only in debug mode (it may leak internals)."""
        if self.settings.debug:
            return f"{type(exc).__name__}: {exc} ({consequence})"
        return f"Something went wrong; {consequence}"

    async def handle_live(self, request: Request) -> Response | LiveResponse:
        if request.headers.get("datastar-request") != "true":
            return PlainTextResponse("The live stream is opened by the Datastar client", 400)
        if self.hub.closing:
            return Response(status_code=503, headers={"Retry-After": "1"})
        ctx = self.context(request)
        try:
            signals = read_json(request.query_params.get("datastar") or "{}")
        except ValueError:  # the stream opens anyway, watching nothing in particular
            signals = {}
        try:
            user = await self.current_user(request)
        except StarModelError:  # the user store is down: the stream goes on for a visitor
            user = None
        watch = self.live_lists.watched_topics(signals, ctx.session_id, user)
        last_id = request.headers.get("last-event-id")
        if HANDOFF_KEY in request.scope:  # held outside the middleware once it has started
            topics = self.hub.topics_for(ctx.session_id, watch)
            stream = HttpLiveStream(ctx.session_id, ctx.tab_id, topics, self.hub.queue_size, self.live_outbox)
            self._attach_presence(stream, signals, ctx, user)
            return LiveResponse(self.hub, stream, last_id)
        # a middleware may rewrite or watch the body: every message goes through it
        generic = self.hub.open(ctx.session_id, ctx.tab_id, join=False, watch=watch)
        self._attach_presence(generic, signals, ctx, user)
        return StreamingResponse(self.hub.events(generic, last_id), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    def _attach_presence(self, stream: LiveStream, signals: Any, ctx: CallContext, user: Any) -> None:
        """Make the tab a viewer of the instances its page shows (entities that keep presence)."""
        if self.presence is not None:
            ctx.user = user
            self.presence.attach(stream, self.presence.looking_at(signals, ctx.session_id, user), ctx)

    async def handle_restore(self, request: Request) -> Response:
        """The page sends what it kept for a browser-stored entity; it gets it back checked
        (with computed values), or an error toast and the defaults to store instead."""
        event_request = EventRequest.from_scope(request.scope, request.receive)
        answer = await restore_answer(event_request, self.entities(), self.refuse_cross_site)
        extra = {name.decode("latin-1"): value.decode("latin-1") for name, value in answer.extra_headers}
        return Response(answer.body, status_code=answer.status_code, headers={**SSE_HEADERS, **extra},
                        media_type="text/event-stream")

    async def handle_static(self, request: Request) -> Response:
        return serve_file(STATIC_DIR, request.path_params["name"])


def _decides_on_user(entity_cls: type[Entity], spec: EventSpec) -> bool:
    """Whether running ``spec`` depends on who is signed in: its ``allow`` rule, the entity's
    policy, its ``rate`` (counted per user) or the entity's journal (which names the actor).
    Only then is the user looked up (for a signed-in session, a read of its sign-in in the
    store); other events run without."""
    options = entity_cls.options()
    return (spec.allow is not None or spec.rate is not None or options.policy is not None
            or options.journal is not None)


def _clear_field_errors(namespace: str, spec: EventSpec, outputs: list[Any]) -> list[Any]:
    """A successful call clears the field errors a refused call may have left in the page
    (``$<namespace>._errors.<param>`` becomes empty)."""
    cleared = {"_errors": dict.fromkeys(spec.params, "")}
    for index, item in enumerate(outputs):
        if isinstance(item, PatchSignals) and namespace in item.signals:
            merged = {**item.signals, namespace: {**item.signals[namespace], **cleared}}
            return [*outputs[:index], PatchSignals(merged), *outputs[index + 1 :]]
    return [PatchSignals({namespace: cleared}), *outputs]

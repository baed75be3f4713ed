"""The admin area (``/admin``): every entity of the app with its count, records with search,
sort, pages, create / edit / delete, and its events as buttons; global entities as their one
instance. Behind a gate (signed-in staff by default) and each entity's own policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fasthtml.common import A, Div, Li, Table, Tbody, Td, Th, Thead, Title, Tr, Ul
from monsterui.all import H1, Card, Container, TextPresets
from starlette.requests import Request

from starmodel.adapters.driving.ui.history import HistoryPages, history_link
from starmodel.adapters.driving.ui.mount import UiMount
from starmodel.adapters.driving.ui.pages import RecordPages, event_panel, header_bar
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import PermissionDenied, StarModelError
from starmodel.core.policy import Rule
from starmodel.core.queries import ListQuery

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["Admin", "is_staff"]


def is_staff(ctx: CallContext) -> bool:
    """The admin's default gate: a signed-in user whose ``is_staff`` is true."""
    return bool(getattr(ctx.user, "is_staff", False))


class Admin:
    """Mounts the admin pages under ``path``.

    Args:
        web: the app.
        path: where the admin lives.
        allow: who may use it (``allow(ctx) -> bool``); default: signed-in staff users.
        views_class: the ``EntityViews`` (sub)class of an entity (its columns, inputs...).
    """

    def __init__(
        self,
        web: WebApp,
        *,
        path: str = "/admin",
        allow: Rule | None = None,
        views_class: Callable[[type[Entity]], type[EntityViews]] | None = None,
        title: str = "Admin",
    ) -> None:
        self.web = web
        self.path = path.rstrip("/")
        self.allow: Rule = is_staff if allow is None else allow
        self.title = title
        self.views_class = views_class or (lambda entity_cls: EntityViews)
        self.mount = UiMount(web, f"{self.path}/_ui", gate=self.allow)
        self.mount.lookup = self.views_for
        self.pages = RecordPages(web, self.mount, self.layout)
        self.pages.record_links = lambda views, record: history_link(self, views, record)
        self._views: dict[type[Entity], EntityViews] = {}
        self._install()

    # --- entities ----------------------------------------------------------------------

    def entities(self) -> list[type[Entity]]:
        return sorted(self.web.entities(), key=lambda cls: cls.__name__)

    def views_for(self, namespace: str) -> EntityViews | None:
        entity_cls = next((c for c in self.web.entities() if c.namespace() == namespace), None)
        if entity_cls is None:
            return None
        views = self._views.get(entity_cls)
        if views is None:
            views = self.views_class(entity_cls)(entity_cls, self.mount, page_path=f"{self.path}/{namespace}")
            self._views[entity_cls] = views
        return views

    # --- pages -------------------------------------------------------------------------

    def layout(self, request: Request, title: str, content: tuple[Any, ...]) -> Any:
        current = request.path_params.get("namespace")
        links = [Li(A("Overview", href=self.path), cls="uk-active" if current is None else "")]
        for cls in self.entities():
            active = "uk-active" if cls.namespace() == current else ""
            links.append(
                Li(
                    A(
                        cls.__name__,
                        href=f"{self.path}/{cls.namespace()}",
                        data_testid=f"admin-nav-{cls.namespace()}",
                    ),
                    cls=active,
                )
            )
        nav = Div(Ul(*links, cls="uk-nav uk-nav-default"), cls="w-48 shrink-0")
        page = Div(H1(title, cls="my-4"), *content, cls="grow min-w-0 space-y-6")
        return (
            Title(f"{title} · {self.title}"),
            Container(header_bar(self.web, request), Div(nav, page, cls="flex gap-8"), cls="pb-12"),
        )

    async def index(self, request: Request) -> Any:
        ctx: CallContext | None = None
        try:
            ctx = await self.web.call_context(request)
            self.mount.check_gate(ctx)
        except PermissionDenied as exc:
            return self.pages.refused(request, ctx, str(exc))
        rows = []
        for cls in self.entities():
            options = cls.options()
            rows.append(
                Tr(
                    Td(A(cls.__name__, href=f"{self.path}/{cls.namespace()}", cls="font-medium")),
                    Td(options.store.name, cls=TextPresets.muted_sm),
                    Td(options.scope),
                    Td(await self._count(cls, ctx), data_testid=f"admin-count-{cls.namespace()}"),
                    data_testid="admin-entity",
                )
            )
        table = Table(
            Thead(Tr(Th("Entity"), Th("Store"), Th("Scope"), Th("Count"))),
            Tbody(*rows),
            cls="uk-table uk-table-divider uk-table-hover",
        )
        return self.layout(request, self.title, (Card(table),))

    async def _count(self, entity_cls: type[Entity], ctx: CallContext) -> str:
        options = entity_cls.options()
        if options.store.is_client:
            return "in browsers"
        if options.scope == "global":
            return "1"
        if not entity_cls.permits("read", ctx):
            return "hidden"
        try:
            page = await self.web.crud_service.page(entity_cls, ListQuery(per_page=1), ctx)
        except StarModelError:
            return "unavailable"
        return str(page.total)

    async def entity_page(self, request: Request, namespace: str) -> Any:
        views = self.views_for(namespace)
        if views is None:
            return self.pages.error(request, 404, f"No entity {namespace!r}")
        options = views.entity_cls.options()
        if options.store.is_client:
            note = Div(
                f"{views.title} lives in each visitor's browser ({options.store.name}); the server keeps "
                "nothing to show here.",
                cls="alert alert-info",
                role="alert",
            )
            return await self.pages.guarded(
                request, views, "read", lambda ctx: _done(self.layout(request, views.title, (note,)))
            )
        if options.scope == "global":
            return await self.instance_page(request, views)
        return await self.pages.list_page(request, views)

    async def instance_page(self, request: Request, views: EntityViews) -> Any:
        """A global entity: its values (live), an edit form and its events."""

        async def draw(ctx: CallContext) -> Any:
            record = await self.web.crud_service.get(views.entity_cls, "global", ctx)
            parts: list[Any] = [Card(views.detail(record))]
            if views.form_fields(creating=False) and views.entity_cls.permits("update", ctx):
                parts.append(Card(views.form(record, then="stay"), header=Div("Edit", cls="uk-h4")))
            parts.append(event_panel(views, record, ctx))
            links = history_link(self, views, record)
            if links:
                parts.insert(0, Div(*links, cls="flex gap-2"))
            return self.layout(request, views.title, tuple(parts))

        return await self.pages.guarded(request, views, "read", draw)

    def _install(self) -> None:
        route = self.web.app.route
        admin = self

        async def admin_index(request: Request) -> Any:
            return await admin.index(request)

        async def admin_entity(request: Request, namespace: str) -> Any:
            return await admin.entity_page(request, namespace)

        async def admin_new(request: Request, namespace: str) -> Any:
            views = admin.views_for(namespace)
            if views is None or not views.can_create():
                return admin.pages.error(request, 404, f"No {namespace!r} records can be created here")
            return await admin.pages.new_page(request, views)

        async def admin_record(request: Request, namespace: str, key: str) -> Any:
            views = admin.views_for(namespace)
            if views is None:
                return admin.pages.error(request, 404, f"No entity {namespace!r}")
            return await admin.pages.detail_page(request, views, key)

        async def admin_edit(request: Request, namespace: str, key: str) -> Any:
            views = admin.views_for(namespace)
            if views is None:
                return admin.pages.error(request, 404, f"No entity {namespace!r}")
            return await admin.pages.edit_page(request, views, key)

        route(self.path, methods=["get"])(admin_index)
        route(self.path + "/{namespace}", methods=["get"])(admin_entity)
        route(self.path + "/{namespace}/new", methods=["get"])(admin_new)
        route(self.path + "/{namespace}/{key}", methods=["get"])(admin_record)
        route(self.path + "/{namespace}/{key}/edit", methods=["get"])(admin_edit)
        self.history = HistoryPages(self)


async def _done(value: Any) -> Any:
    return value

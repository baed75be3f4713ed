"""Generated HTML pages of records: list, new, detail and edit, for ``sm.crud(...)`` and the
admin. Pages check the entity's policy (and the admin's gate) before drawing anything; an
anonymous visitor who may not see a page is sent to the login page when the app has one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fasthtml.common import A, Div, Form, P, Span, Title
from fasthtml.core import FtResponse
from monsterui.all import H1, Button, ButtonT, Card, Container, TextPresets
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from starmodel.adapters.driving.ui.chrome import account_menu, home_link, theme_control
from starmodel.adapters.driving.ui.fields import input_value, render_control, view_of
from starmodel.adapters.driving.ui.mount import UiMount
from starmodel.adapters.driving.ui.pending import busy_while, pending_signal, sends_with_indicator
from starmodel.adapters.driving.ui.views import EntityViews, parse_list_query
from starmodel.adapters.driving.ui.wording import words
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import PermissionDenied, StarModelError, ValidationFailed
from starmodel.core.events import EventSpec
from starmodel.core.json_text import json_text
from starmodel.core.signals import JsExpr

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["EVENT_SIGNAL", "Layout", "RecordPages", "event_panel", "page_layout"]

EVENT_SIGNAL = "smevent"
Layout = Callable[[Request, str, tuple[Any, ...]], Any]


def page_layout(web: WebApp, request: Request, title: str, content: tuple[Any, ...]) -> Any:
    """The plain page chrome of generated pages: the app's header bar, a title, the content."""
    return Title(title), Container(
        header_bar(web, request), H1(title, cls="my-4"), *content, cls="space-y-6 pb-12"
    )


def header_bar(web: WebApp, request: Request) -> Any:
    """The way back to the app's home page on the left; theme choice and who is signed in
    (with a sign-out button) on the right."""
    return Div(
        home_link(web, request),
        Div(theme_control(), account_menu(web, request), cls="flex items-center gap-3"),
        cls="flex justify-between items-center gap-3 pt-4",
    )


class RecordPages:
    """Draws the pages of one or many entities (``views_for``) with ``layout``.

    Args:
        web: the app.
        mount: the action routes the views post to.
        layout: ``layout(request, title, content)`` -> the page.
    """

    def __init__(self, web: WebApp, mount: UiMount, layout: Layout) -> None:
        self.web = web
        self.mount = mount
        self.layout = layout
        self.record_links: Callable[[EntityViews, Entity], list[Any]] = lambda views, record: []
        """Extra buttons of a record's detail page (the admin's History)."""

    def refused(self, request: Request, ctx: CallContext | None, message: str) -> Response:
        """Anonymous visitors go to the login page (and come back); others get a 403 page."""
        if (ctx is None or ctx.user is None) and self.web.login_url:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{self.web.login_url}?next={quote(target, safe='')}", status_code=303)
        return self.error(request, 403, message)

    def error(self, request: Request, status: int, message: str) -> Response:
        titles = {
            400: "Bad request",
            403: "Not allowed",
            404: "Not found",
            409: "Conflict",
            422: "Invalid request",
            503: "Unavailable",
        }
        title = titles.get(status, "Error")
        body = Div(message, cls="alert alert-error", role="alert", data_testid="sm-page-error")
        return FtResponse(self.layout(request, title, (body,)), status_code=status)

    async def guarded(
        self, request: Request, views: EntityViews, action: str, draw: Callable[[CallContext], Any]
    ) -> Any:
        """Run ``draw(ctx)`` if the caller passes the gate and may ``action`` the entity."""
        ctx: CallContext | None = None
        try:
            ctx = await self.web.call_context(request)
            self.mount.check_gate(ctx)
            if not views.entity_cls.permits(action, ctx):
                raise PermissionDenied(f"You may not {action} {views.title_plural}")
            return await draw(ctx)
        except PermissionDenied as exc:
            return self.refused(request, ctx, str(exc))
        except ValidationFailed as exc:
            details = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            return self.error(request, 400, f"{exc.message}: {details}")
        except StarModelError as exc:
            return self.error(request, exc.status_code, str(exc))

    # --- the pages ---------------------------------------------------------------------

    async def list_page(self, request: Request, views: EntityViews) -> Any:
        async def draw(ctx: CallContext) -> Any:
            query = parse_list_query(request.query_params, views.per_page)
            page = await self.web.crud_service.page(views.entity_cls, query, ctx)
            actions = []
            if views.page_path and views.entity_cls.permits("create", ctx) and views.can_create():
                actions.append(
                    A(
                        f"New {words(views.title)}",
                        href=f"{views.page_path}/new",
                        cls="uk-btn uk-btn-primary",
                        data_testid="sm-new",
                    )
                )
            class_events = event_panel(views, None, ctx)
            content = (Div(*actions, cls="flex gap-2"), class_events, Card(views.table(page)))
            return self.layout(request, views.title_plural.capitalize(), content)

        return await self.guarded(request, views, "read", draw)

    async def new_page(self, request: Request, views: EntityViews) -> Any:
        async def draw(ctx: CallContext) -> Any:
            back = A(f"Back to {views.title_plural}", href=views.page_path or "/", cls="uk-btn uk-btn-ghost")
            content = (back, Card(views.form(then="detail")))
            return self.layout(request, f"New {words(views.title)}", content)

        return await self.guarded(request, views, "create", draw)

    async def detail_page(self, request: Request, views: EntityViews, key: str) -> Any:
        async def draw(ctx: CallContext) -> Any:
            record = await self.web.crud_service.get(views.entity_cls, key, ctx)
            buttons: list[Any] = [
                A(f"Back to {views.title_plural}", href=views.page_path or "/", cls="uk-btn uk-btn-ghost")
            ]
            if views.editable() and views.entity_cls.permits("update", _with(ctx, record)):
                buttons.append(
                    A(
                        "Edit",
                        href=views.record_url(record, "/edit"),
                        cls="uk-btn uk-btn-primary",
                        data_testid="sm-edit",
                    )
                )
            if views.deletable() and views.entity_cls.permits("delete", _with(ctx, record)):
                buttons.append(delete_button(views, record))
            buttons.extend(self.record_links(views, record))
            content = (
                Div(*buttons, cls="flex gap-2"),
                Card(views.detail(record)),
                event_panel(views, record, ctx),
            )
            return self.layout(request, views.label(record), content)

        return await self.guarded(request, views, "read", draw)

    async def edit_page(self, request: Request, views: EntityViews, key: str) -> Any:
        async def draw(ctx: CallContext) -> Any:
            record = await self.web.crud_service.get(views.entity_cls, key, ctx)
            if not views.editable() or not views.entity_cls.permits("update", _with(ctx, record)):
                raise PermissionDenied(f"You may not update this {words(views.title)}")
            back = A("Cancel", href=views.record_url(record) or "/", cls="uk-btn uk-btn-ghost")
            content = (back, views.notice(record), Card(views.form(record, then="detail")))
            return self.layout(request, f"Edit {views.label(record)}", content)

        return await self.guarded(request, views, "read", draw)

    # --- routes ------------------------------------------------------------------------

    def install_crud(self, views: EntityViews) -> None:
        """``/products``, ``/products/new``, ``/products/{key}``, ``/products/{key}/edit``."""
        path = views.page_path or ""
        route = self.web.app.route

        async def list_records(request: Request) -> Any:
            return await self.list_page(request, views)

        async def new_record(request: Request) -> Any:
            return await self.new_page(request, views)

        async def show_record(request: Request, key: str) -> Any:
            return await self.detail_page(request, views, key)

        async def edit_record(request: Request, key: str) -> Any:
            return await self.edit_page(request, views, key)

        route(path, methods=["get"])(list_records)
        route(path + "/new", methods=["get"])(new_record)
        route(path + "/{key}", methods=["get"])(show_record)
        route(path + "/{key}/edit", methods=["get"])(edit_record)


def _with(ctx: CallContext, record: Entity) -> CallContext:
    ctx.entity = record
    return ctx


def delete_button(views: EntityViews, record: Entity) -> Any:
    url = views.url("delete", key=views.key_of(record), version=record._sm_version, then="list")
    question = f"Delete this {words(views.title)}?"
    pending = pending_signal(views.namespace, "delete")
    return Button(
        "Delete",
        cls=ButtonT.destructive,
        type="button",
        data_testid="sm-delete",
        **{"data-on:click": f"confirm('{question}') && @post('{url}')"},
        **sends_with_indicator(pending),
        **busy_while(pending),
    )


def event_panel(views: EntityViews, record: Entity | None, ctx: CallContext) -> Any:
    """The entity's events as buttons: those of the class on list pages (``record=None``),
    those of one record (or of a session/global instance) otherwise; events with parameters
    get a small form. Only events the caller may run are shown."""
    entity_cls = views.entity_cls
    if entity_cls.options().scope == "session":
        return ""  # its events act on the caller's own session, not on the instance shown
    shown = []
    for spec in entity_cls.events().values():
        if spec.on_class != (record is None and entity_cls.options().scope == "id"):
            continue
        if spec.allow is not None and not spec.allow(_with(ctx, record) if record else ctx):
            continue
        shown.append(event_form(views, spec, record))
    if not shown:
        return ""
    return Card(*shown, header=Div("Events", cls="uk-h4"), data_testid="sm-events")


def event_form(views: EntityViews, spec: EventSpec, record: Entity | None) -> Any:
    """One event: its parameters as inputs (bound to ``smevent.<ns>.<event>.<param>``) and a
    button that runs it with them."""
    base = f"{EVENT_SIGNAL}.{views.namespace}.{spec.name}"
    inputs = []
    args: dict[str, JsExpr] = {}
    defaults: dict[str, Any] = {}
    for name, info in spec.params_model.model_fields.items():
        view = view_of(name, info)
        input_id = f"sm-event-{views.namespace}-{spec.name}-{name}"
        control = render_control(view, f"{base}.{name}", input_id=input_id)
        inputs.append(Div(Span(view.label, cls="text-sm"), control, cls="space-y-1"))
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        defaults[name] = input_value(view, default)
        args[name] = JsExpr(f"${base}.{name}")
    bound = getattr(record if record is not None else views.entity_cls, spec.name)
    action = bound.action(**args)
    label = spec.name.replace("_", " ").capitalize()
    doc = (spec.fn.__doc__ or "").strip().splitlines()
    signals = {EVENT_SIGNAL: {views.namespace: {spec.name: defaults}}} if defaults else None
    pending = pending_signal(views.namespace, spec.name)
    return Form(
        Div(
            *inputs,
            Button(label, cls=ButtonT.secondary, type="submit", data_testid=f"event-{spec.name}",
                   **busy_while(pending, spec, views.namespace)),
            cls="flex flex-wrap items-end gap-3",
        ),
        P(doc[0], cls=TextPresets.muted_sm) if doc else "",
        data_signals=json_text(signals, default=str) if signals else None,
        cls="space-y-1",
        **{"data-on:submit__prevent": action},
        **sends_with_indicator(pending),
    )

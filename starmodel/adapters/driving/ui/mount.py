"""The action routes behind generated views: form submits (create / update / delete), live
validation while typing, and the fragments lists and detail views fetch again when their
records change. One ``UiMount`` serves the views an app exposes (``sm.views``/``sm.crud``),
another the admin's (behind its gate)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from datastar_py.sse import ServerSentEventGenerator as SSE
from fasthtml.common import to_xml
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from starmodel.adapters.driving.datastar.sse import error_events, patch_signals_event, render_outputs
from starmodel.adapters.driving.ui.fields import form_values, input_value
from starmodel.adapters.driving.ui.views import FORM_SIGNAL, EntityViews, parse_list_query
from starmodel.adapters.driving.web.event_route import front
from starmodel.adapters.driving.web.input_limits import InputRefused, read_int
from starmodel.adapters.driving.web.requests import EventRequest, SSEAnswer, error_response
from starmodel.core.actions import PatchSignals, redirect, toast
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import EntityNotFound, PermissionDenied, StarModelError, ValidationFailed
from starmodel.core.policy import Rule

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["UiMount", "parse_list_query"]

log = logging.getLogger("starmodel.ui")
_THEN = ("stay", "detail", "list")


def _field_errors(errors: dict[str, str], names: list[str]) -> dict[str, str]:
    """Errors keyed by form field (``tags.0`` -> ``tags``); the rest under ``__root__``."""
    shown = dict.fromkeys(names, "")
    shown["__root__"] = ""
    for location, message in errors.items():
        name = location.split(".", 1)[0]
        key = name if name in shown else "__root__"
        shown[key] = f"{shown[key]}; {message}" if shown[key] else message
    return shown


class UiMount:
    """Serves the action routes of a set of ``EntityViews`` under ``base``.

    Args:
        web: the app (identity, request checks, the record service).
        base: the path the routes live under (``/_starmodel/ui``, ``/admin/_ui``).
        gate: an extra rule every call must pass (the admin's), besides each entity's policy.
    """

    def __init__(self, web: WebApp, base: str, *, gate: Rule | None = None) -> None:
        self.web = web
        self.base = base.rstrip("/")
        self.gate = gate
        self.views: dict[str, EntityViews] = {}
        self.lookup: Callable[[str], EntityViews | None] = self.views.get
        routes = web.app.router.routes
        route = Route(self.base + "/{namespace}/{action}", self.handle, methods=["GET", "POST"])
        routes.insert(front(routes), route)  # after the event route: events are matched first

    def add(self, views: EntityViews) -> EntityViews:
        self.views[views.namespace] = views
        return views

    def url(self, namespace: str, action: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"{self.base}/{namespace}/{action}" + (f"?{query}" if query else "")

    async def context(self, request: Request) -> CallContext:
        """The caller, refused with ``PermissionDenied`` if the gate says no."""
        ctx = await self.web.call_context(request)
        self.check_gate(ctx)
        return ctx

    def check_gate(self, ctx: CallContext) -> None:
        """``PermissionDenied`` if the gate refuses ``ctx`` (pages keep ``ctx`` to tell an
        anonymous visitor, sent to sign in, from a signed-in one, refused)."""
        if self.gate is not None and not (self.gate if isinstance(self.gate, bool) else self.gate(ctx)):
            raise PermissionDenied(
                "Sign in with an account allowed here first"
                if ctx.user is None
                else "You may not use this area"
            )

    # --- dispatch ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | SSEAnswer:
        action = request.path_params["action"]
        handler = _GETS.get(action) if request.method in ("GET", "HEAD") else _POSTS.get(action)
        if handler is None:
            return PlainTextResponse("Not found", status_code=404)
        views = self.lookup(request.path_params["namespace"])
        if views is None:
            return PlainTextResponse("Not found", status_code=404)
        refusal = self.web.refuse_cross_site(request)
        if refusal:
            return error_response(403 if request.method == "POST" else 400, refusal)
        try:
            ctx = await self.context(request)
            signals, args = await EventRequest.from_scope(request.scope, request.receive).signals_and_args()
            return await handler(self, views, ctx, signals, args)
        except ValidationFailed as exc:
            return error_response(422, exc.message, None, exc.errors)
        except StarModelError as exc:
            return error_response(exc.status_code, str(exc), retry_after=exc.retry_after)
        except Exception:
            log.exception("generated view action %s on %s failed", action, views.namespace)
            return error_response(500, "Something went wrong; nothing was changed")

    # --- fragments (GET) ---------------------------------------------------------------

    async def list_fragment(self, views: EntityViews, ctx: CallContext, signals: Any, args: Any) -> SSEAnswer:
        query = parse_list_query(args, views.per_page)
        page = await self.web.crud_service.page(views.entity_cls, query, ctx)
        return _patch(views.table(page))

    async def detail_fragment(
        self, views: EntityViews, ctx: CallContext, signals: Any, args: Any
    ) -> SSEAnswer:
        key = _required(args, "key")
        record = await self._find(views, key, ctx)
        return _patch(views.detail(record, key=key))

    async def notice_fragment(
        self, views: EntityViews, ctx: CallContext, signals: Any, args: Any
    ) -> SSEAnswer:
        key = _required(args, "key")
        version = _version(args)
        record = await self._find(views, key, ctx)
        if record is None:
            stub = views.entity_cls.model_construct()
            stub._sm_key = key
            return _patch(views.notice(stub, version=version, deleted=True))
        return _patch(views.notice(record, version=version))

    async def _find(self, views: EntityViews, key: str, ctx: CallContext) -> Entity | None:
        try:
            return await self.web.crud_service.get(views.entity_cls, key, ctx)
        except EntityNotFound:
            return None

    # --- actions (POST) ----------------------------------------------------------------

    async def validate(self, views: EntityViews, ctx: CallContext, signals: Any, args: Any) -> SSEAnswer:
        """Live validation of one field while the user types: its error, or none."""
        form = args.get("form")
        name = args.get("field", "")
        creating = form == "new"
        if form not in ("new", "edit"):
            raise ValidationFailed({"form": "must be new or edit"}, "Invalid request")
        fields = views.form_fields(creating=creating)
        if name not in {f.name for f in fields}:
            raise ValidationFailed({"field": "unknown field"}, "Invalid request")
        signal = f"{views.namespace}_{form}"
        values = form_values(fields, _form_signals(signals, signal))
        message = ""
        try:
            views.entity_cls.model_validate(values)
        except ValidationError as exc:
            errors = ValidationFailed.from_pydantic(exc).errors
            message = _field_errors(errors, [name]).get(name, "")
        return SSEAnswer(200, patch_signals_event({FORM_SIGNAL: {signal: {"_errors": {name: message}}}}))

    async def create(self, views: EntityViews, ctx: CallContext, signals: Any, args: Any) -> SSEAnswer:
        if not views.can_create():
            raise PermissionDenied(f"{views.title} records are not created here")
        then = _then(args)
        fields = views.form_fields(creating=True)
        signal = f"{views.namespace}_new"
        values = form_values(fields, _form_signals(signals, signal))
        names = [f.name for f in fields]
        try:
            record = await self.web.crud_service.create(views.entity_cls, values, ctx)
        except ValidationFailed as exc:
            return _form_errors(signal, names, exc)
        outputs: list[Any] = [_clear_errors(signal, names)]
        if then == "stay":
            fresh = {f.name: input_value(f, _default(views.entity_cls, f.name)) for f in fields}
            outputs = [_patch_form(signal, fresh, names), toast(f"{views.title} created", "success")]
        else:
            target = views.record_url(record) if then == "detail" else views.page_path
            outputs.append(redirect(target or "/"))
        return SSEAnswer(200, render_outputs(outputs))

    async def update(self, views: EntityViews, ctx: CallContext, signals: Any, args: Any) -> SSEAnswer:
        _check_editable(views)
        then = _then(args)
        key = _required(args, "key")
        fields = views.form_fields(creating=False)
        signal = f"{views.namespace}_edit"
        values = form_values(fields, _form_signals(signals, signal))
        names = [f.name for f in fields]
        try:
            record = await self.web.crud_service.update(
                views.entity_cls, key, values, ctx, version=_version(args)
            )
        except ValidationFailed as exc:
            return _form_errors(signal, names, exc)
        if then == "stay":  # the form drawn again: its new version, the saved values
            body = str(SSE.patch_elements(to_xml(views.form(record, then=then))))
            return SSEAnswer(200, body + render_outputs([toast(f"{views.title} saved", "success")]))
        target = views.record_url(record) if then == "detail" else views.page_path
        return SSEAnswer(200, render_outputs([_clear_errors(signal, names), redirect(target or "/")]))

    async def delete(self, views: EntityViews, ctx: CallContext, signals: Any, args: Any) -> SSEAnswer:
        if not views.deletable():
            raise PermissionDenied(f"{views.title} cannot be deleted here")
        then = _then(args)
        key = _required(args, "key")
        await self.web.crud_service.delete(views.entity_cls, key, ctx, version=_version(args))
        if then == "list" and views.page_path:
            return SSEAnswer(200, render_outputs([redirect(views.page_path)]))
        return SSEAnswer(200, render_outputs([toast(f"{views.title} deleted", "success")]))


_GETS = {
    "list": UiMount.list_fragment,
    "detail": UiMount.detail_fragment,
    "notice": UiMount.notice_fragment,
}
_POSTS = {
    "validate": UiMount.validate,
    "create": UiMount.create,
    "update": UiMount.update,
    "delete": UiMount.delete,
}


def _check_editable(views: EntityViews) -> None:
    if not views.editable():
        raise PermissionDenied(f"{views.title} cannot be changed here")


def _patch(component: Any) -> SSEAnswer:
    return SSEAnswer(200, str(SSE.patch_elements(to_xml(component))))


def _required(args: Any, name: str) -> str:
    value = args.get(name)
    if not value:
        raise ValidationFailed({name: "is required"}, "Invalid request")
    return str(value)


def _version(args: Any) -> int | None:
    raw = args.get("version")
    if raw in (None, ""):
        return None
    try:
        return read_int(str(raw), low=0)
    except InputRefused as exc:
        raise ValidationFailed({"version": str(exc)}, "Invalid request") from None


def _then(args: Any) -> str:
    then = args.get("then", "stay")
    if then not in _THEN:
        raise ValidationFailed({"then": f"must be one of {', '.join(_THEN)}"}, "Invalid request")
    return str(then)


def _form_signals(signals: Any, name: str) -> Any:
    forms = signals.get(FORM_SIGNAL) if isinstance(signals, dict) else None
    return forms.get(name) if isinstance(forms, dict) else None


def _default(entity_cls: type[Entity], name: str) -> Any:
    info = entity_cls.model_fields[name]
    return None if info.is_required() else info.get_default(call_default_factory=True)


def _form_errors(signal: str, names: list[str], exc: ValidationFailed) -> SSEAnswer:
    shown = _field_errors(exc.errors, names)
    body = patch_signals_event({FORM_SIGNAL: {signal: {"_errors": shown}}})
    summary = "Please correct the marked fields" if any(shown[n] for n in names) else exc.message
    body += error_events(f"{summary}; nothing was saved")
    return SSEAnswer(422, body)


def _clear_errors(signal: str, names: list[str]) -> Any:
    return PatchSignals({FORM_SIGNAL: {signal: {"_errors": dict.fromkeys([*names, "__root__"], "")}}})


def _patch_form(signal: str, values: dict[str, Any], names: list[str]) -> Any:
    errors = dict.fromkeys([*names, "__root__"], "")
    return PatchSignals(
        json.loads(json.dumps({FORM_SIGNAL: {signal: {**values, "_errors": errors}}}, default=str))
    )

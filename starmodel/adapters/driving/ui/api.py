"""The JSON API of a generated CRUD entity, and the OpenAPI document of every such API.

``GET /api/products`` (``?q=&sort=name|-name&page=&per_page=``), ``POST /api/products``,
``GET|PATCH|PUT|DELETE /api/products/{key}``. Same policy, validation and unit of work as the
pages; responses carry only public fields; ``ETag`` / ``If-Match`` guard against lost updates.
Writes need ``Content-Type: application/json`` and a same-site origin (a browser cannot send
such a request from another site without the app's consent).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starmodel.adapters.driving.ui.openapi import openapi_document
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.adapters.driving.web.event_route import front
from starmodel.adapters.driving.web.input_limits import InputRefused, read_int, read_json
from starmodel.adapters.driving.web.requests import EventRequest, retry_after_value
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    PermissionDenied,
    StarModelError,
    ValidationFailed,
)
from starmodel.core.fields import editable_fields
from starmodel.core.json_text import json_text
from starmodel.core.queries import ListQuery

if TYPE_CHECKING:
    from starmodel.adapters.driving.ui.registry import UiRegistry
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["OPENAPI_PATH", "JsonApi"]

log = logging.getLogger("starmodel.api")
OPENAPI_PATH = "/api/openapi.json"
_READS = ("GET", "HEAD")  # HEAD: a GET without its body (Starlette routes it with GET)


class JsonAnswer(JSONResponse):
    """A JSON answer that is valid JSON whatever the record holds (see ``json_text``)."""

    def render(self, content: Any) -> bytes:
        return json_text(content).encode("utf-8")


def problem(
    status: int, detail: str, errors: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error answer: ``{"detail": ..., "errors": {field: message}}``."""
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JsonAnswer(body, status_code=status, headers=headers)


def serialize(record: Entity) -> dict[str, Any]:
    """A record as the API shows it: its public fields and computed values."""
    return record.public_state()


def _etag(record: Entity) -> dict[str, str]:
    return {"ETag": f'"{record._sm_version}"'}


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    try:
        return read_int(text, low=0)
    except InputRefused:
        raise BadRequest({"If-Match": 'must be an ETag given by this API, such as "3"'}) from None


class JsonApi:
    """Installs the JSON routes of one entity's views under ``path``."""

    def __init__(self, web: WebApp, views: EntityViews, path: str, registry: UiRegistry) -> None:
        self.web = web
        self.views = views
        self.entity_cls = views.entity_cls
        self.path = path.rstrip("/")
        routes = web.app.router.routes
        at = front(routes)  # after the event route: events are matched first
        routes.insert(at, Route(self.path, self.collection, methods=["GET", "POST"]))
        routes.insert(at, Route(self.path + "/{key}", self.item, methods=["GET", "PATCH", "PUT", "DELETE"]))
        if not registry.apis:  # the first API also serves the document describing them all
            routes.insert(
                at,
                Route(
                    OPENAPI_PATH,
                    lambda request: JSONResponse(
                        openapi_document(registry.apis, title=web.app.title or "StarModel API")
                    ),
                    methods=["GET"],
                ),
            )

    # --- handlers ----------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        if request.method in _READS:
            return await self._run(request, self._list)
        return await self._run(request, self._create)

    async def item(self, request: Request) -> Response:
        handlers = {"PATCH": self._patch, "PUT": self._put, "DELETE": self._delete}
        return await self._run(request, handlers.get(request.method, self._get))

    async def _run(self, request: Request, handler: Any) -> Response:
        ctx: CallContext | None = None
        try:
            if request.method not in _READS:
                refusal = self.web.refuse_cross_site(request, datastar=False)
                if refusal:
                    return problem(403, refusal)
            ctx = await self.web.call_context(request)
            return await handler(request, ctx)
        except PermissionDenied as exc:
            if ctx is not None and ctx.user is None:
                return problem(
                    401, "Sign in first: " + str(exc), headers={"WWW-Authenticate": 'Session realm="app"'}
                )
            return problem(403, str(exc))
        except ConcurrencyError as exc:
            status = 412 if request.headers.get("if-match") else 409
            return problem(status, str(exc))
        except ValidationFailed as exc:
            return problem(exc.status_code, exc.message, exc.errors)
        except StarModelError as exc:
            wait = exc.retry_after
            return problem(exc.status_code, str(exc),
                           headers=None if wait is None else {"Retry-After": retry_after_value(wait)})
        except Exception:
            log.exception("API %s %s failed", request.method, request.url.path)
            return problem(500, "Something went wrong; nothing was changed")

    async def _list(self, request: Request, ctx: CallContext) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - {"q", "sort", "page", "per_page"})
        if unknown:
            raise ValidationFailed(dict.fromkeys(unknown, "unknown query parameter"), "Invalid list query")
        sort = params.get("sort") or None
        descending = bool(sort and sort.startswith("-"))
        query = ListQuery(
            search=(params.get("q") or "").strip(),
            sort=sort.removeprefix("-") if sort else None,
            descending=descending,
            page=_number(params, "page", 1),
            per_page=_number(params, "per_page", self.views.per_page),
        )
        page = await self.web.crud_service.page(self.entity_cls, query, ctx)
        return JsonAnswer(
            {
                "items": [serialize(record) for record in page.items],
                "total": page.total,
                "page": query.page,
                "per_page": query.per_page,
                "pages": page.pages,
            }
        )

    async def _create(self, request: Request, ctx: CallContext) -> Response:
        values = await self._body(request)
        record = await self.web.crud_service.create(self.entity_cls, values, ctx)
        location = f"{self.path}/{record.record_key()}"
        return JsonAnswer(
            serialize(record), status_code=201, headers={"Location": location, **_etag(record)}
        )

    async def _get(self, request: Request, ctx: CallContext) -> Response:
        record = await self.web.crud_service.get(self.entity_cls, request.path_params["key"], ctx)
        return JsonAnswer(serialize(record), headers=_etag(record))

    async def _patch(self, request: Request, ctx: CallContext) -> Response:
        return await self._patch_values(request, ctx, await self._body(request))

    async def _put(self, request: Request, ctx: CallContext) -> Response:
        values = await self._body(request)
        fields = editable_fields(self.entity_cls, creating=False)
        missing = [n for n in fields if n not in values and self.entity_cls.model_fields[n].is_required()]
        if missing:
            raise ValidationFailed(dict.fromkeys(missing, "Field required"), "PUT replaces every field")
        return await self._patch_values(request, ctx, values)

    async def _patch_values(self, request: Request, ctx: CallContext, values: dict[str, Any]) -> Response:
        record = await self.web.crud_service.update(
            self.entity_cls, request.path_params["key"], values, ctx, version=_if_match(request)
        )
        return JsonAnswer(serialize(record), headers=_etag(record))

    async def _delete(self, request: Request, ctx: CallContext) -> Response:
        await self.web.crud_service.delete(
            self.entity_cls, request.path_params["key"], ctx, version=_if_match(request)
        )
        return Response(status_code=204)

    async def _body(self, request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _UnsupportedMedia()
        raw = await EventRequest.from_scope(request.scope, request.receive).body()
        try:
            values = read_json(raw or b"null")
        except ValueError as exc:
            raise BadRequest({"body": str(exc)}) from None
        if not isinstance(values, dict):
            raise BadRequest({"body": "must be a JSON object of field values"})
        return values


class BadRequest(ValidationFailed):
    """A request the API cannot read at all (not JSON, a bad header): 400."""

    status_code = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors, "Bad request")


class _UnsupportedMedia(StarModelError):
    status_code = 415

    def __init__(self) -> None:
        super().__init__("Send the record as JSON (Content-Type: application/json)")


def _number(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return read_int(raw)
    except InputRefused as exc:
        raise ValidationFailed({name: str(exc)}, "Invalid list query") from None

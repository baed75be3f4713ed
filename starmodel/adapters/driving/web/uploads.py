"""The HTTP side of file fields: announcing an upload (``POST /_starmodel/uploads``), its chunks
(``PUT /_starmodel/uploads/<ticket>?offset=N``), downloads that pass the entity's read policy
(``GET /_starmodel/files/<namespace>/<key>/<field>/<id>``), upload progress pushed to the live
streams, the per-request reading of upload tokens, and the page script (``uploads.js``).

Translations only: the rules (sizes, types, rights, commits) live in ``app.uploads``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from fasthtml.common import Script
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starmodel.adapters.driving.live.lists import record_topic
from starmodel.adapters.driving.web.assets import STATIC_PREFIX
from starmodel.adapters.driving.web.event_route import front
from starmodel.adapters.driving.web.identity import SESSION_KEY
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.adapters.driving.web.security import with_nonces
from starmodel.app.file_commits import presented_uploads
from starmodel.app.uploads import Uploads, UploadTarget
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError, ValidationFailed
from starmodel.core.files import (
    FILE_ID,
    INLINE_IMAGES,
    FileTooLarge,
    StoredFile,
    UploadProgress,
    upload_tokens,
)

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["FILES_PATH", "FORM_UPLOADS_PATH", "UPLOADS_PATH", "file_url", "install_uploads", "upload_signal"]

UPLOADS_PATH = "/_starmodel/uploads"
FORM_UPLOADS_PATH = "/_starmodel/uploads/form"
"""One request with a ``multipart/form-data`` body (its part ``file``), for clients without
the page script: ``?target=<namespace>/<field>&key=<key>&attach=0``."""
_PART_OVERHEAD = 64 * 1024  # a multipart body's boundaries and part headers, at most
FILES_PATH = "/_starmodel/files"
_NO_KEY = "-"
_ASCII_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def file_url(entity: Entity, field: str) -> str | None:
    """Where the file of ``entity.<field>`` is downloaded from (``None`` when it holds none).
    The address names the file's id, so a replaced file gets a new one."""
    value = getattr(entity, field, None)
    if not isinstance(value, StoredFile):
        return None
    key = entity.record_key() if type(entity).options().scope == "id" else None
    return f"{FILES_PATH}/{type(entity).namespace()}/{quote(key or _NO_KEY, safe='')}/{field}/{value.id}"


def upload_signal(entity_cls: type[Entity], field: str, key: str | None = None) -> str:
    """The signal that holds the progress of an upload to ``field`` (``{name, size, received,
    percent, state}``): ``$doc._uploads.photo``, ``$photo.3._uploads.image`` for a record."""
    path = entity_cls.namespace() + (f".{key}" if key else "")
    return f"${path}._uploads.{field}"


def install_uploads(web: WebApp, uploads: Uploads) -> None:
    """Serve uploads and downloads on ``web``, push progress to its live streams, and read
    upload tokens in its requests."""
    routes = _UploadRoutes(web, uploads)
    table = web.app.router.routes
    at = front(table)  # after the event route: events are matched first
    table.insert(at, Route(UPLOADS_PATH, routes.begin, methods=["POST"]))
    table.insert(at, Route(FORM_UPLOADS_PATH, routes.form, methods=["POST"]))
    table.insert(at + 1, Route(UPLOADS_PATH + "/{ticket}", routes.chunk, methods=["PUT"]))
    table.insert(
        at + 2, Route(FILES_PATH + "/{namespace}/{key}/{field}/{file_id}", routes.download, methods=["GET"])
    )
    web.app.add_middleware(UploadScope, uploads=uploads)
    web.bus.subscribe(UploadProgress, routes.on_progress, everywhere=True)
    web.hub.fact_handlers.append((UploadProgress, routes.on_progress))
    web.app.hdrs = [*web.app.hdrs, *with_nonces([Script(src=f"{STATIC_PREFIX}/uploads.js", defer=True)])]


class UploadScope:
    """ASGI middleware: within each request, upload tokens are read for that request's session,
    and the uploads it presented that no commit made permanent are discarded at its end."""

    # a live stream presents no upload: once it has started, it may be held outside this layer
    answer_start_only = True

    def __init__(self, app: ASGIApp, uploads: Uploads) -> None:
        self.app = app
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        def session() -> str | None:
            found = scope.get("session")
            return found.get(SESSION_KEY) if isinstance(found, dict) else None

        presented: set[str] = set()
        reader = upload_tokens.set(self.uploads.token_reader(session))
        claims = presented_uploads.set(presented)
        try:
            await self.app(scope, receive, send)
        finally:
            upload_tokens.reset(reader)
            presented_uploads.reset(claims)
            if presented:
                await self.uploads.discard_unclaimed(presented)


def _refusal(exc: StarModelError) -> JSONResponse:
    errors = exc.errors if isinstance(exc, ValidationFailed) else {}
    message = exc.message if isinstance(exc, ValidationFailed) else str(exc)
    return JSONResponse({"error": message, "errors": errors}, exc.status_code)


class _UploadRoutes:
    def __init__(self, web: WebApp, uploads: Uploads) -> None:
        self.web = web
        self.uploads = uploads

    def _entity(self, namespace: str) -> type[Entity] | None:
        return next((c for c in self.web.entities() if c.namespace() == namespace), None)

    async def begin(self, request: Request) -> Response:
        refusal = self.web.refuse_cross_site(request)
        if refusal:
            return JSONResponse({"error": refusal, "errors": {}}, 403)
        try:
            body = read_json((await request.body())[:16384].decode("utf-8", "replace"))
            if not isinstance(body, dict):
                raise ValidationFailed({"body": "must be a JSON object"}, "Upload refused")
            namespace, _, name = str(body.get("target", "")).partition("/")
            entity_cls = self._entity(namespace)
            if entity_cls is None:
                return JSONResponse({"error": "No such entity", "errors": {}}, 404)
            target = UploadTarget.find(entity_cls, name)
            key = body.get("key")
            ctx = await self.web.call_context(request)
            answer = await self.uploads.begin(
                target, str(key) if isinstance(key, str | int) and key != "" else None, ctx,
                name=body.get("name"), size=body.get("size"), content_type=body.get("type"),
                attach=body.get("attach", True) is not False,
            )
        except StarModelError as exc:
            return _refusal(exc)
        except ValueError as exc:
            return JSONResponse({"error": str(exc) or "Invalid request", "errors": {}}, 422)
        return JSONResponse(answer)

    async def chunk(self, request: Request) -> Response:
        refusal = self.web.refuse_cross_site(request)
        if refusal:
            return JSONResponse({"error": refusal, "errors": {}}, 403)
        try:
            ctx = await self.web.call_context(request)
            ctx.tab_id = None  # this answer patches no signals: the uploader's tab too hears the change live
            ticket = self.uploads.read_ticket(request.path_params["ticket"], ctx)
            offset_text = request.query_params.get("offset", "")
            if not offset_text.isdigit() or len(offset_text) > 15:
                raise ValidationFailed({"offset": "must be a whole number"}, "Upload refused")
            entity_cls = self._entity(ticket.namespace)
            if entity_cls is None:
                return JSONResponse({"error": "No such entity", "errors": {}}, 404)
            target = UploadTarget.find(entity_cls, ticket.target)
            answer = await self.uploads.receive(ticket, target, int(offset_text), request.stream(), ctx)
        except StarModelError as exc:
            answer_error = _refusal(exc)
            if getattr(exc, "size", None) is not None:  # a wrong offset: where to resume
                answer_error = JSONResponse({"error": str(exc), "errors": {}, "received": exc.size}, 409)  # type: ignore[attr-defined]
            return answer_error
        return JSONResponse(answer)

    async def form(self, request: Request) -> Response:
        """A whole file in one ``multipart/form-data`` request: its body is counted as it
        arrives and refused (413) once it passes the field's limit, before it is parsed whole."""
        refusal = self.web.refuse_cross_site(request)
        if refusal:
            return JSONResponse({"error": refusal, "errors": {}}, 403)
        query = request.query_params
        namespace, _, name = query.get("target", "").partition("/")
        entity_cls = self._entity(namespace)
        if entity_cls is None:
            return JSONResponse({"error": "No such entity", "errors": {}}, 404)
        try:
            target = UploadTarget.find(entity_cls, name)
            limit = target.rules.max_size + _PART_OVERHEAD
            try:
                form = await Request(request.scope, _bounded(request.receive, limit)).form(
                    max_files=1, max_fields=4
                )
            except _BodyTooLarge:
                raise FileTooLarge(
                    {name: f"The file {target.rules.problem(_size_only(limit))}"}, "The file is too large"
                ) from None
            except (MultiPartException, HTTPException, ValueError) as exc:
                problem = getattr(exc, "detail", None) or str(exc) or "not a multipart body"
                raise ValidationFailed({"file": problem}, "Upload refused") from None
            part = form.get("file")
            if not isinstance(part, UploadFile) or part.size is None:
                raise ValidationFailed({"file": "send the file in the part named 'file'"}, "Upload refused")
            ctx = await self.web.call_context(request)
            ctx.tab_id = None
            key = query.get("key") or None
            begun = await self.uploads.begin(
                target, key, ctx, name=part.filename, size=part.size, content_type=part.content_type,
                attach=query.get("attach", "1") not in ("0", "false"),
            )
            ticket = self.uploads.read_ticket(begun["ticket"], ctx)
            offset, answer = 0, None
            while answer is None or "token" not in answer:
                chunk = await part.read(begun["chunk"])
                answer = await self.uploads.receive(ticket, target, offset, _once(chunk), ctx)
                offset = answer["received"]
        except StarModelError as exc:
            return _refusal(exc)
        return JSONResponse(answer)

    async def download(self, request: Request) -> Response:
        params = request.path_params
        entity_cls = self._entity(params["namespace"])
        field, file_id = params["field"], params["file_id"]
        if (
            entity_cls is None
            or field not in entity_cls.model_fields
            or field in entity_cls.__starmodel_server_only__
            or not FILE_ID.match(file_id)
        ):
            return Response("Not found", 404)
        try:
            ctx = await self.web.call_context(request)
            scope = entity_cls.options().scope
            key = ctx.session_id if scope == "session" else "global" if scope == "global" else params["key"]
            record = await self.web.crud_service.get(entity_cls, key, ctx)  # the read policy
        except StarModelError as exc:
            if exc.status_code >= 500:
                return Response("Unavailable", exc.status_code)
            return Response("Forbidden", 403) if exc.status_code == 403 else Response("Not found", 404)
        value = getattr(record, field, None)
        store = self.uploads.store
        if not isinstance(value, StoredFile) or value.id != file_id or not await store.exists(file_id):
            return Response("Not found", 404)
        headers = _file_headers(value)
        if _etag_matches(request.headers.get("if-none-match"), value.etag):
            kept = {k: v for k, v in headers.items() if k in ("ETag", "Cache-Control")}
            return Response(status_code=304, headers=kept)
        return StreamingResponse(store.read(file_id), headers=headers, media_type=headers["Content-Type"])

    async def on_progress(self, fact: UploadProgress) -> None:
        """Bus subscriber (every process): the progress goes to the tabs showing the entity."""
        state = {"_uploads": {fact.field: fact.signal()}}
        if fact.scope == "id":
            topic = record_topic(fact.namespace, fact.owner)
            self.web.hub.publish(topic, {fact.namespace: {fact.key: state}})
        else:
            topic = "global" if fact.scope == "global" else f"session:{fact.session_id}"
            self.web.hub.publish(topic, {fact.namespace: state})


class _BodyTooLarge(Exception):
    pass


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a body once it has brought more than ``limit`` bytes."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return bounded


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _size_only(size: int) -> StoredFile:
    return StoredFile.model_construct(id="0" * 32, name="file", content_type="application/octet-stream",
                                      size=size, etag="0" * 64)


def _file_headers(value: StoredFile) -> dict[str, str]:
    inline = value.content_type in INLINE_IMAGES
    ascii_name = _ASCII_NAME.sub("_", value.name).strip() or "file"
    disposition = f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\""
    if ascii_name != value.name:
        disposition += f"; filename*=UTF-8''{quote(value.name, safe='')}"
    return {
        "Content-Type": value.content_type,
        "Content-Length": str(value.size),
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "private, no-cache",
        "ETag": f'"{value.etag}"',
    }


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or any(
        tag.strip().removeprefix("W/") == f'"{etag}"' for tag in header.split(",")
    )


"""Limits every request passes before any handler reads its body: FastHTML reads and parses the
body of each request its routes answer (JSON with no depth or size limit, ``int()`` of the
Content-Length), so a page of the app would answer a hostile body with a 500."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starmodel.adapters.driving.web.input_limits import MAX_JSON_DEPTH, json_too_deep
from starmodel.adapters.driving.web.requests import EventRequest, SSEAnswer, error_response
from starmodel.core.errors import ValidationFailed

__all__ = ["RequestLimits"]


class RequestLimits:
    """ASGI middleware: refuses a request whose ``Content-Length`` is not a number, or whose
    JSON body is too large or nested too deeply, with a 4xx in the form its client reads (SSE
    for Datastar, JSON otherwise). Event requests (``handles_itself``) pass untouched: they
    are read within limits on the way."""

    answer_start_only = True
    """It acts on the request and the answer's start only (see ``live.http.LiveDetach``)."""

    def __init__(self, app: ASGIApp, handles_itself: Callable[[str, str], bool]) -> None:
        self.app = app
        self.handles_itself = handles_itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.handles_itself(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first, as Starlette reads them
        length = headers.get(b"content-length")
        if length is not None and not length.strip().isdigit():
            return await _refusal(headers, 400, "Content-Length", "must be a number")(scope, receive, send)
        if headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower() != b"application/json":
            return await self.app(scope, receive, send)
        try:
            body = await EventRequest(scope, receive, {"content-length": (length or b"").decode()}).body()
        except ValidationFailed:
            return await _refusal(headers, 413, "body", "is too large")(scope, receive, send)
        if json_too_deep(body, MAX_JSON_DEPTH):
            refusal = _refusal(headers, 400, "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            return await refusal(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)


def _refusal(headers: dict[bytes, bytes], status: int, part: str, problem: str) -> SSEAnswer | Response:
    if headers.get(b"datastar-request") == b"true":
        return error_response(status, f"Request refused: {part} {problem}")
    return JSONResponse({"detail": "Bad request", "errors": {part: problem}}, status)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` (already read) first, then the real messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

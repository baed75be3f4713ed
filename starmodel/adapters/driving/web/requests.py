"""HTTP plumbing of the event route: a lean request (read straight from the ASGI scope) and a
complete SSE answer sent in one go. The hottest path of the framework, so no framework objects."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from starmodel.adapters.driving.datastar.sse import error_events, patch_signals_event
from starmodel.adapters.driving.web.input_limits import INT64_MAX, read_json
from starmodel.core.errors import ValidationFailed

__all__ = ["MAX_BODY", "EventRequest", "SSEAnswer", "declared_length", "error_response", "retry_after_value"]

MAX_BODY = 1_000_000


class SSEAnswer:
    """A complete SSE answer sent in one go: an event's reply needs no streaming machinery."""

    __slots__ = ("body", "extra_headers", "status_code")

    _HEADERS = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]

    def __init__(
        self, status: int, body: str, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status_code = status
        self.body = body.encode("utf-8")
        self.extra_headers = extra_headers or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*self._HEADERS, (b"content-length", str(len(self.body)).encode()), *self.extra_headers]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class EventRequest:
    """Just what an event call needs from an HTTP request, read straight from the ASGI scope
    (cheaper than a full Starlette ``Request`` on the hottest path)."""

    __slots__ = ("headers", "method", "path", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = headers

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> EventRequest:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return cls(scope, receive, headers)

    async def body(self) -> bytes:
        if declared_length(self.headers.get("content-length")) > MAX_BODY:
            raise ValidationFailed({"body": "Request body too large"}, "Request refused")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise ValidationFailed({"body": "Request body too large"}, "Request refused")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def signals_and_args(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Signals (JSON body, or ``?datastar=`` for GET/DELETE) and the action's arguments."""
        query = self.scope.get("query_string", b"")
        args = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
        raw: str | bytes | None
        if self.method in ("GET", "DELETE"):
            raw = args.pop("datastar", None)
        else:
            raw = await self.body()
        if not raw:
            return {}, args
        try:
            signals = read_json(raw)
        except ValueError as exc:
            raise ValidationFailed({"signals": f"Signals refused: {exc}"}, "Bad request") from None
        if not isinstance(signals, dict):
            raise ValidationFailed({"signals": "Signals must be a JSON object"}, "Bad request")
        return signals, args


def declared_length(header: str | None) -> int:
    """The ``Content-Length`` a request declares, in ASCII digits only (0 if none or not a
    number: the body is counted as it arrives anyway; a number too long to read is huge)."""
    text = (header or "").strip()
    if not (text.isascii() and text.isdigit()):
        return 0
    return int(text) if len(text) <= 18 else INT64_MAX


def _header_safe(text: str) -> str:
    """One printable ASCII line (a header value may carry neither CR/LF nor other controls)."""
    flat = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    return " ".join(flat.split())[:200]



def error_response(
    status: int,
    message: str,
    namespace: str | None = None,
    field_errors: dict[str, str] | None = None,
    reset: dict[str, Any] | None = None,
    *,
    retry_after: float | None = None,
) -> SSEAnswer:
    """An error answer: toast and field errors; ``reset`` (``{namespace: state}``) first puts
    signals back to a known state (browser-stored entities with invalid data);
    ``retry_after`` (seconds) becomes a ``Retry-After`` header."""
    body = patch_signals_event(reset) if reset else ""
    body += error_events(message, namespace=namespace, field_errors=field_errors)
    headers = [(b"x-starmodel-error", _header_safe(message).encode("latin-1"))]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after_value(retry_after).encode("latin-1")))
    return SSEAnswer(status, body, headers)


def retry_after_value(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))

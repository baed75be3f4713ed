"""Request ids, and the hooks through which logs, metrics and traces see each HTTP request.

Every request gets an id: the caller's ``X-Request-ID`` when it is sane (1 to 128 letters,
digits and ``-_.:@``; a proxy in front usually sets one), else a new random one. It is sent
back in the answer's ``X-Request-ID`` and is ``current_request_id`` while the request is
handled, so that log lines written meanwhile carry it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "RequestCall", "RequestObserver", "RequestWatch", "current_request_id"]

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9_.:@-]{1,128}$")
log = logging.getLogger("starmodel.requests")

#: The id of the request being handled (``None`` outside a request).
current_request_id: ContextVar[str | None] = ContextVar("sm_request_id", default=None)


@dataclass
class RequestCall:
    """One HTTP request, as request observers see it.

    Attributes:
        method: the HTTP method.
        path: the URL path (never the query string, which may carry values a log must not).
        request_id: its id (see the module's docstring).
        headers: the request's headers, names in lower case (the first of repeated ones).
        status: the answer's status (0 until it starts; 500 if the app failed before).
        duration: seconds until the answer ended (filled in when it finishes).
        notes: per-observer state.
    """

    method: str
    path: str
    request_id: str
    headers: dict[bytes, bytes]
    status: int = 0
    duration: float = 0.0
    notes: dict[int, Any] = field(default_factory=dict)


class RequestObserver:
    """Hears each HTTP request: ``started`` before the app sees it, ``responded`` when the
    answer starts, ``finished`` when it ends (for a live stream: when the stream closes)."""

    def started(self, request: RequestCall) -> None:
        """The request arrived."""

    def responded(self, request: RequestCall) -> None:
        """The answer's status line and headers are on their way (``request.status``)."""

    def finished(self, request: RequestCall) -> None:
        """The answer has ended (``request.status`` and ``request.duration`` set)."""


class RequestWatch:
    """ASGI middleware: gives each HTTP request its id, sends it back, and tells
    ``observers`` when the request starts, is answered and ends."""

    def __init__(self, app: ASGIApp, observers: list[RequestObserver] | None = None) -> None:
        self.app = app
        self.observers = observers if observers is not None else []
        # each hook only of the observers that have it
        self._started = _hooks(self.observers, "started")
        self._responded = _hooks(self.observers, "responded")
        self._finished = _hooks(reversed(self.observers), "finished")

    @property
    def answer_start_only(self) -> bool:
        """Without observers it only adds the answer's id header (see
        ``live.http.LiveDetach``); observers hear a live stream end when it closes."""
        return not self.observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        given = headers.get(b"x-request-id")
        request_id = given.decode("ascii") if given and _SANE_ID.match(given) else secrets.token_hex(16)
        echo = (b"x-request-id", request_id.encode("ascii"))
        token = current_request_id.set(request_id)
        observers = self.observers
        if not observers:
            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), echo]
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                current_request_id.reset(token)
            return
        call = RequestCall(scope["method"], scope["path"], request_id, headers)
        for hook in self._started:
            _tell(hook, call)
        began = time.perf_counter()
        responded = self._responded

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echo]
                call.status = message["status"]
                for hook in responded:
                    _tell(hook, call)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            call.duration = time.perf_counter() - began
            if not call.status:
                call.status = 500  # the app failed before answering; the server answers 500
            for hook in self._finished:
                _tell(hook, call)
            current_request_id.reset(token)


def _hooks(observers: Iterable[RequestObserver], name: str) -> list[Callable[[RequestCall], None]]:
    """The bound ``name`` hooks of the observers whose class defines it (not the base's no-op)."""
    base = getattr(RequestObserver, name)
    return [getattr(o, name) for o in observers if getattr(type(o), name) is not base]


def _tell(hook: Any, call: RequestCall) -> None:
    """Run an observer's hook; a failing observer is logged and never fails the request."""
    try:
        hook(call)
    except Exception:
        log.exception("request observer %r failed", hook)

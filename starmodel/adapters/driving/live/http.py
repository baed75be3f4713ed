"""A tab's live stream over HTTP (ASGI): written by one fan-out, held by one coroutine.

An open stream costs little more than its connection: no task, queue, timer or generator of
its own. Its request waits for the connection to end (``receive``); the hub's changes are
written to every stream from one callback at a time (``Outbox``), calling the server's
``send`` directly: that returns at once unless the connection's buffer is full, and only such
a stream gets a task, which finishes the write and sends what came meanwhile, up to the
stream's backlog (past it the stream is dropped and its tab resyncs when it reconnects).

``LiveDetach`` goes further. It wraps the app's middleware stack, and when every middleware in
it only acts on the request and on the answer's start (sessions, security headers, request
ids, ...), a live stream opens through all of them (its session cookie, its headers) and is
then held by ``LiveDetach`` itself: the coroutines, closures and request objects of the
middleware, the routing and the handler are freed instead of living as long as the tab.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starmodel.adapters.driving.live.stream import LiveHub, LiveStream

__all__ = ["HANDOFF_KEY", "HttpLiveStream", "LiveDetach", "LiveResponse", "Outbox", "detach_live_streams"]

log = logging.getLogger("starmodel.live")

HANDOFF_KEY = "starmodel.live_handoff"
"""Scope key of the ``_Handoff`` through which a live stream is given to ``LiveDetach``."""
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
BODY = "http.response.body"
OPENING, OPEN, ENDED = 0, 1, 2
FLUSH_SLICE = 512
"""Streams written per turn of the event loop: other work runs between slices of a burst."""
_STARLETTE_START_ONLY = frozenset({
    "starlette.middleware.errors.ServerErrorMiddleware",
    "starlette.middleware.exceptions.ExceptionMiddleware",
    "starlette.middleware.sessions.SessionMiddleware",
})  # fmt: skip


class Outbox:
    """Writes what waits for the live streams of one app, from one callback at a time (in
    slices of ``FLUSH_SLICE`` streams): one change to many tabs is one pass, not a task each."""

    __slots__ = ("_due", "_loop", "_scheduled", "_writing")

    def __init__(self) -> None:
        self._due: list[HttpLiveStream] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing: set[asyncio.Task[None]] = set()  # slow streams finishing a write

    def due(self, stream: HttpLiveStream) -> None:
        self._due.append(stream)
        if not self._scheduled and self._loop is not None:
            self._schedule()

    def started(self, loop: asyncio.AbstractEventLoop) -> None:
        """A stream opened on ``loop``: writes are scheduled there (an app served by one
        loop after another, as tests do, follows the latest)."""
        if self._loop is not loop:
            self._loop, self._scheduled = loop, False
            if self._due:
                self._schedule()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._scheduled = True
        # a context of its own: the writes belong to no request (not the publisher's)
        self._loop.call_soon(self._flush, context=contextvars.Context())

    def _flush(self) -> None:
        due = self._due
        if len(due) > FLUSH_SLICE:
            batch, self._due = due[:FLUSH_SLICE], due[FLUSH_SLICE:]
            self._schedule()
        else:
            batch, self._due, self._scheduled = due, [], False
        for stream in batch:
            stream.write()

    def finish(self, stream: HttpLiveStream, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        """``stream``'s write is waiting for its connection: a task finishes it."""
        assert self._loop is not None
        task = self._loop.create_task(stream.finish(step, waiting))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)


class HttpLiveStream(LiveStream):
    """A live stream written to an HTTP connection as its messages come (see the module)."""

    __slots__ = ("busy", "outbox", "queued", "send", "state")

    def __init__(
        self, session_id: str, tab_id: str | None, topics: set[str], limit: int, outbox: Outbox
    ) -> None:
        super().__init__(session_id, tab_id, topics, limit)
        self.outbox = outbox
        self.send: Send | None = None
        self.state = OPENING
        self.busy = False  # a write waits for the connection (a task finishes it)
        self.queued = False  # in the outbox

    def _ready(self) -> None:
        if self.state == OPEN and not self.busy and not self.queued:
            self.queued = True
            self.outbox.due(self)

    def start(self, send: Send) -> None:
        """The first message is sent: write with ``send`` from now on, beginning with what
        came meanwhile."""
        self.send = send
        self.state = OPEN
        self.outbox.started(asyncio.get_running_loop())
        if self.closed or self._pending:
            self._ready()

    def write(self) -> None:
        """Send what waits (the outbox calls it), or the end if the stream was closed."""
        self.queued = False
        if self.state != OPEN or self.busy:
            return
        if self.closed:
            self.state = ENDED
            self._send(self._last())
        elif data := self.take():
            self._send({"type": BODY, "body": data, "more_body": True})

    def gone(self) -> None:
        """The connection ended: nothing more is written."""
        self.state = ENDED
        self.closed = self.closed or "client left"
        self._pending = None

    def _last(self) -> Message:
        hint = b"" if self.retry is None else f"retry: {self.retry}\n\n".encode()
        return {"type": BODY, "body": hint, "more_body": False}

    def _send(self, message: Message) -> None:
        """Run the server's ``send`` here, up to its first wait; if it has to wait (the
        connection's buffer is full), a task finishes it."""
        assert self.send is not None
        step = self.send(message)
        if not isinstance(step, types.CoroutineType):  # an awaitable of another kind
            step = _awaited(step)
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._failed(exc)
            return
        self.busy = True
        self.outbox.finish(self, step, waiting)

    async def finish(self, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        """Finish a write that had to wait, then send what came meanwhile (or the end)."""
        assert self.send is not None
        try:
            await _resume(step, waiting)
            while self.state == OPEN:
                if self.closed:
                    self.state = ENDED
                    await self.send(self._last())
                elif data := self.take():
                    await self.send({"type": BODY, "body": data, "more_body": True})
                else:
                    break
        except Exception as exc:
            self._failed(exc)
        finally:
            self.busy = False

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, OSError):  # a server of ASGI 2.4 says so when the client left
            log.warning("live stream of tab %s: writing failed: %r", self.tab_id, exc)
        self.gone()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


@types.coroutine
def _resume(step: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Finish, in the awaiting task, a coroutine that was run by hand up to its first wait
    (``waiting``: what it yielded there)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # the task is cancelled: so is the write
            try:
                waiting = step.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = step.send(sent)
            except StopIteration:
                return


class _Handoff:
    """Where ``LiveResponse`` leaves its stream for ``LiveDetach`` to hold."""

    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response: LiveResponse | None = None


class LiveResponse:
    """The answer to ``GET /_starmodel/live``: the stream's first message (catch-up or
    resync), then its changes until the tab leaves or the stream ends."""

    __slots__ = ("hub", "last_event_id", "stream")

    def __init__(self, hub: LiveHub, stream: HttpLiveStream, last_event_id: str | None) -> None:
        self.hub = hub
        self.stream = stream
        self.last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream, hub = self.stream, self.hub
        first = await hub.opening(stream, self.last_event_id)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
            if first is None:  # the server is stopping
                await send({"type": BODY, "body": b"", "more_body": False})
                return
            await send({"type": BODY, "body": first.encode(), "more_body": True})
        except BaseException:
            if first is not None:
                stream.gone()
                hub.leave(stream)
            raise
        handoff = scope.get(HANDOFF_KEY)
        if handoff is not None:  # LiveDetach holds the stream once the middleware are done
            handoff.response = self
            return
        await self.hold(receive, send)

    async def hold(self, receive: Receive, send: Send) -> None:
        """Write the stream's changes with ``send`` until the connection ends (``receive``
        says so: the tab left, or the stream's end was sent)."""
        stream, hub = self.stream, self.hub
        stream.start(send)
        hub.reading(stream)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            stream.gone()
            hub.leave(stream)


class LiveDetach:
    """ASGI: the app's middleware stack, with its live streams held outside of it.

    A request for ``path`` goes through ``app`` as any other; if its handler answered with a
    ``LiveResponse``, the stream is held here once the answer has started, and what the
    middleware, routing and handler made for the request is freed. Only when every
    middleware in ``app`` acts on the answer's start alone (``detaches``); else the stream
    stays inside them (a middleware that rewrites bodies sees every message)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self.detaches = _start_only(app)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # a plain function: other requests get no coroutine of this wrapper
        if self.detaches and scope["type"] == "http" and scope["path"] == self.path:
            return self._live(scope, receive, send)
        return self.app(scope, receive, send)

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        handoff = scope[HANDOFF_KEY] = _Handoff()
        await self.app(scope, receive, send)
        response = handoff.response
        del scope[HANDOFF_KEY], handoff
        if response is not None:
            await response.hold(receive, send)


def _start_only(app: Any) -> bool:
    """Whether every middleware down to the router acts on the request and the answer's start
    only: a class says so with ``answer_start_only = True``; Starlette's own are known."""
    node = app
    while not isinstance(node, Router):
        kind = type(node)
        if not getattr(node, "answer_start_only", False) and (
            f"{kind.__module__}.{kind.__qualname__}" not in _STARLETTE_START_ONLY
        ):
            return False
        node = getattr(node, "app", None)
    return True


def detach_live_streams(app: Any, path: str) -> None:
    """Wrap ``app``'s middleware stack (a Starlette app's, built on its first call) in
    ``LiveDetach`` for the live streams at ``path``."""
    if app.middleware_stack is not None:  # already serving: wrap what it built
        app.middleware_stack = LiveDetach(app.middleware_stack, path)
        return
    build = app.build_middleware_stack

    def build_with_detach() -> ASGIApp:
        return LiveDetach(build(), path)

    app.build_middleware_stack = build_with_detach

"""Driving an ASGI app in process, as a server would: its HTTP requests and its lifespan.

- ``http_scope`` and ``call_asgi``: one request straight into the app's ASGI callable, with
  nothing in between (what benchmarks use to see the framework's own cost).
- ``AsgiTransport``: an ``httpx`` transport over the same path whose response body streams as
  the app sends it (so a live stream can be read in process); each ``http.response.body``
  message is kept as one part, in ``response.extensions["parts"]``.
- ``AsgiLifespan``: the app's startup and shutdown (``async with AsgiLifespan(app):``).

Example::

    async with AsgiLifespan(sm.app) as lifespan:
        transport = AsgiTransport(sm.app, state=lifespan.state)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/")).status_code == 200
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

import httpx

__all__ = [
    "AsgiApp",
    "AsgiLifespan",
    "AsgiResponse",
    "AsgiTransport",
    "call_asgi",
    "http_scope",
]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI application: ``await app(scope, receive, send)``."""

CLIENT = ("127.0.0.1", 50000)  # where every request comes from


def http_scope(
    method: str,
    path: str,
    *,
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    raw_path: bytes | None = None,
    server: tuple[str, int] = ("127.0.0.1", 8000),
    scheme: str = "http",
    state: dict[str, Any] | None = None,
) -> Scope:
    """The ASGI scope of an HTTP request as uvicorn builds it (spec 2.3), coming from
    ``127.0.0.1``. ``headers`` are lower-case byte pairs, passed on as they are; ``state`` is
    what the app's lifespan left for its requests."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": server,
        "client": CLIENT,
        "scheme": scheme,
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": query_string,
        "headers": list(headers),
        "state": {} if state is None else state,
    }


@dataclass
class AsgiResponse:
    """What the app sent back: its status, headers (byte pairs, as sent) and body parts (one
    per ``http.response.body`` message that carried something)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    parts: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), decoded, or ``None``."""
        wanted = name.lower().encode("latin-1")
        return next((value.decode("latin-1") for key, value in self.headers if key.lower() == wanted), None)


class _Exchange:
    """One request's two ASGI channels, as a server offers them: ``receive`` gives the body
    once, then ``http.disconnect`` when the answer is complete or the client has gone;
    ``send`` collects the answer."""

    __slots__ = ("body", "gone", "headers", "parts", "requested", "status")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requested = False
        self.gone = asyncio.Event()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []

    async def receive(self) -> Message:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if not self.status:
                self.status = message["status"]
                self.headers = list(message.get("headers", ()))
        elif kind == "http.response.body":
            chunk = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if more or chunk:
                self.parts.append(chunk)
            if not more:
                self.gone.set()


async def call_asgi(app: AsgiApp, scope: Scope, body: bytes = b"") -> AsgiResponse:
    """One request (with ``body``) through ``app``, read to its end. The app's exceptions
    propagate; an app that answered nothing raises ``RuntimeError``."""
    exchange = _Exchange(body)
    await app(scope, exchange.receive, exchange.send)
    if not exchange.status:
        raise RuntimeError("the app sent no response")
    return AsgiResponse(exchange.status, exchange.headers, exchange.parts)


class _StreamedExchange(_Exchange):
    """An exchange whose answer is handed on as it comes: the status when it starts, then
    each part (``None`` at the end)."""

    __slots__ = ("chunks", "started")

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(self, message: Message) -> None:
        parts = len(self.parts)
        await super().send(message)
        if self.status and not self.started.done():
            self.started.set_result(None)
        if len(self.parts) > parts:
            self.chunks.put_nowait(self.parts[-1])
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.chunks.put_nowait(None)


class _Body(httpx.AsyncByteStream):
    """A response body read as the app sends it; closing it early is the client going away."""

    def __init__(self, exchange: _StreamedExchange, task: asyncio.Task[None], raise_errors: bool) -> None:
        self._exchange = exchange
        self._task = task
        self._raise = raise_errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._exchange.chunks.get()) is not None:
            yield chunk
        try:
            await self._task  # the app's own exception, if it raised one, reaches the caller
        except Exception:
            if self._raise:
                raise

    async def aclose(self) -> None:
        self._exchange.gone.set()
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
            except Exception:
                pass


class AsgiTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport into an ASGI app in this process. Unlike
    ``httpx.ASGITransport`` the body streams as the app sends it, and every
    ``http.response.body`` message is kept as one part (``response.extensions["parts"]``: the
    steps of a streaming event).

    Args:
        app: the ASGI app (``sm.app``).
        state: what the app's lifespan left for its requests (``AsgiLifespan.state``); each
            request gets a shallow copy.
        raise_app_exceptions: let an exception the app raises reach the caller; ``False``
            answers 500 instead if nothing was sent yet, else ends the body quietly.
    """

    def __init__(self, app: AsgiApp, *, state: dict[str, Any] | None = None,
                 raise_app_exceptions: bool = True) -> None:
        self.app = app
        self.state = {} if state is None else state
        self.raise_app_exceptions = raise_app_exceptions

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in cast(httpx.AsyncByteStream, request.stream)])
        url = request.url
        scope = http_scope(
            request.method,
            unquote(url.path),
            query_string=url.query,
            headers=[(key.lower(), value) for key, value in request.headers.raw],
            raw_path=url.raw_path.split(b"?")[0],
            server=(url.host, url.port or 80),
            scheme=url.scheme,
            state=dict(self.state),
        )
        exchange = _StreamedExchange(body)

        async def run() -> None:
            try:
                await self.app(scope, exchange.receive, exchange.send)
            finally:
                exchange.chunks.put_nowait(None)
                if not exchange.started.done():
                    exchange.started.set_exception(RuntimeError("the app sent no response"))

        task = asyncio.create_task(run())
        try:
            await exchange.started
        except RuntimeError:
            try:
                await task  # the app's exception, if it raised one
            except Exception:
                if self.raise_app_exceptions:
                    raise
                return httpx.Response(500, request=request)
            raise
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_Body(exchange, task, self.raise_app_exceptions),
            extensions={"parts": exchange.parts},
        )


class AsgiLifespan:
    """Drives an app's ASGI lifespan: its startup on ``start``, its shutdown on ``stop`` (or
    ``async with AsgiLifespan(app) as lifespan:``). ``state`` is what the app keeps for
    its requests (give it to ``AsgiTransport``)."""

    def __init__(self, app: AsgiApp, *, timeout: float = 10.0) -> None:
        self.app = app
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float | None = None) -> None:
        """Run the app's startup; if it fails, the app's exception (``RuntimeError`` if it
        raised none); ``TimeoutError`` if it does not answer within ``timeout`` seconds
        (default: the one given at creation)."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def send(message: Message) -> None:
            self._from_app.put_nowait(message)

        async def run() -> None:
            await self.app(scope, self._to_app.get, send)

        self._task = asyncio.create_task(run())
        self._to_app.put_nowait({"type": "lifespan.startup"})
        answer = await self._answer(self.timeout if timeout is None else timeout)
        if answer["type"] != "lifespan.startup.complete":
            await self._finish()
            raise RuntimeError(f"the app failed to start: {answer.get('message', '')}")

    async def stop(self, timeout: float | None = None) -> None:
        """Run the app's shutdown (nothing if it is not started); ``RuntimeError`` if it fails."""
        if self._task is None or self._task.done():
            return
        self._to_app.put_nowait({"type": "lifespan.shutdown"})
        answer = await self._answer(self.timeout if timeout is None else timeout)
        await self._finish()
        if answer["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"the app failed to stop cleanly: {answer.get('message', '')}")

    async def __aenter__(self) -> AsgiLifespan:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _answer(self, timeout: float) -> Message:
        assert self._task is not None
        waiting = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait({waiting, self._task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            return waiting.result()
        waiting.cancel()
        if self._task in done:
            self._task.result()  # its exception, if any
            raise RuntimeError("the app ended its lifespan without answering")
        raise TimeoutError(f"the app did not answer its lifespan message within {timeout}s")

    async def _finish(self) -> None:
        if self._task is not None:
            await self._task

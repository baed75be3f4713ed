"""Helpers for HTTP tests: an SSE parser, clients over ASGI and over a real socket."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from starmodel import StarModel

DATASTAR = {"Datastar-Request": "true"}
BASE_URL = "http://testserver"
COMMENT = "comment"  # the kind SSEReader gives a block of comment lines


@dataclass
class SSEEvent:
    event: str
    id: str | None = None
    data: list[str] = field(default_factory=list)

    def lines(self, prefix: str) -> list[str]:
        """The data lines that start with ``prefix`` (Datastar's ``signals``, ``elements``...)."""
        start = prefix + " "
        return [line[len(start) :] for line in self.data if line.startswith(start)]

    def value(self, name: str) -> str | None:
        found = self.lines(name)
        return found[0] if found else None

    @property
    def signals(self) -> dict[str, Any]:
        assert self.event == "datastar-patch-signals", self.event
        return json.loads("\n".join(self.lines("signals")))

    @property
    def elements(self) -> str:
        assert self.event == "datastar-patch-elements", self.event
        return "\n".join(self.lines("elements"))


def parse_event(block: str) -> SSEEvent | None:
    """One SSE event from the text between two blank lines (``None`` for comments only)."""
    found = SSEEvent(event="message")
    seen = False
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen = True
        if name == "event":
            found.event = value
        elif name == "id":
            found.id = value
        elif name == "data":
            found.data.append(value)
    return found if seen else None


def parse_sse(text: str) -> list[SSEEvent]:
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [e for e in (parse_event(b) for b in blocks) if e is not None]


def of_type(events: list[SSEEvent], kind: str) -> list[SSEEvent]:
    return [e for e in events if e.event == kind]


def merged_signals(events: list[SSEEvent]) -> dict[str, Any]:
    """Every patch-signals event of a response, merged one level deep (per namespace)."""
    merged: dict[str, Any] = {}
    for item in of_type(events, "datastar-patch-signals"):
        for namespace, values in item.signals.items():
            merged.setdefault(namespace, {}).update(values)
    return merged


def state_signals(events: list[SSEEvent]) -> dict[str, Any]:
    """Like ``merged_signals`` without the local ``_errors`` signals (field-error display)."""
    state: dict[str, Any] = {}
    for namespace, values in merged_signals(events).items():
        kept = {k: v for k, v in values.items() if k != "_errors"}
        if kept:
            state[namespace] = kept
    return state


class SSEReader:
    """Reads events from a streaming response as they arrive, with bounded waits.

    A background task pumps the body into a queue, so a wait that times out never cancels a
    read half-way (which would end httpx's iterator).
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments = 0
        self.ended = False
        self._queue: asyncio.Queue[SSEEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        buffer = ""
        try:
            async for chunk in self.response.aiter_text():
                buffer += chunk.replace("\r\n", "\n")
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    parsed = parse_event(block)
                    if parsed is None:
                        self.comments += 1
                        self._queue.put_nowait(SSEEvent(event=COMMENT))
                    else:
                        self._queue.put_nowait(parsed)
        except httpx.HTTPError:
            pass
        finally:
            self.ended = True
            self._queue.put_nowait(None)

    async def next(self, timeout: float = 3.0, *, comments: bool = False) -> SSEEvent:
        """The next event (a block of comments counts as one, of kind ``"comment"``, only when
        ``comments``); ``TimeoutError`` if none comes in time, ``EOFError`` at the end."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self._queue.get()
                if found is None:
                    self._queue.put_nowait(None)
                    raise EOFError("the stream ended")
                if comments or found.event != COMMENT:
                    return found

    async def nothing_within(self, seconds: float) -> bool:
        """True if no event (comments aside) arrives within ``seconds``."""
        try:
            await self.next(timeout=seconds)
        except (TimeoutError, EOFError):
            return True
        return False

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> AsyncIterator[SSEReader]:
    """Open a streaming request and read it event by event; closed on exit."""
    async with client.stream(method, path, **kwargs) as response:
        reader = SSEReader(response)
        try:
            yield reader
        finally:
            await reader.close()


def asgi_client(sm: StarModel, **kwargs: Any) -> httpx.AsyncClient:
    """A client talking to the app in-process (responses are read whole)."""
    transport = httpx.ASGITransport(app=sm.app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def post_event(
    client: httpx.AsyncClient,
    path: str,
    signals: Any = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    """POST an event as Datastar does: header, JSON signals body, JSON-encoded arguments."""
    query = {name: json.dumps(value) for name, value in params.items()}
    body = json.dumps({} if signals is None else signals)
    return await client.post(
        path,
        params=query,
        content=body,
        headers={**DATASTAR, "Content-Type": "application/json", **(headers or {})},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def live_server(sm: StarModel) -> AsyncIterator[str]:
    """Serve ``sm.app`` with uvicorn on a loopback port for the duration; yields the base URL.

    Needed where streaming matters: httpx's ASGI transport only returns a response once the
    app has finished sending it.
    """
    port = free_port()
    config = uvicorn.Config(
        sm.app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(5):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        sm.hub.close_all()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def socket_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=5)

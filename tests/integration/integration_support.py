"""Helpers for the integration tests: Datastar SSE parsing, an in-process uvicorn server and
a live-stream reader with bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

DATASTAR = {"Datastar-Request": "true"}


@dataclass
class SSE:
    """One server-sent event (``kind="comment"`` for a block of comment lines only)."""

    kind: str
    data: list[str] = field(default_factory=list)

    def field(self, name: str) -> list[str]:
        prefix = name + " "
        return [line[len(prefix):] for line in self.data if line.startswith(prefix)]

    @property
    def signals(self) -> dict[str, Any]:
        assert self.kind == "datastar-patch-signals", self
        return json.loads("\n".join(self.field("signals")))


def parse_block(block: str) -> SSE | None:
    kind, data, comment = None, [], False
    for line in block.split("\n"):
        if not line:
            continue
        if line.startswith(":"):
            comment = True
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
    if kind is None and not data:
        return SSE("comment") if comment else None
    return SSE(kind or "message", data)


def parse_sse(text: str) -> list[SSE]:
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [e for e in (parse_block(b) for b in blocks) if e is not None and e.kind != "comment"]


def signals_of(text: str) -> list[dict[str, Any]]:
    return [e.signals for e in parse_sse(text) if e.kind == "datastar-patch-signals"]


def field_errors(text: str, namespace: str) -> dict[str, str]:
    """The ``$<namespace>._errors`` signal an error answer sets (field -> message)."""
    for signals in signals_of(text):
        errors = signals.get(namespace, {}).get("_errors")
        if errors:
            return errors
    return {}


async def post_event(client: httpx.AsyncClient, path: str, **args: Any) -> httpx.Response:
    """POST an event as the Datastar client does (arguments JSON-encoded in the query)."""
    query = {name: json.dumps(value) for name, value in args.items()}
    return await client.post(path, params=query, headers=DATASTAR, json={})


class StreamReader:
    """Reads a streaming response event by event; every wait is bounded."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.queue: asyncio.Queue[SSE | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        buffer = ""
        try:
            async for chunk in self.response.aiter_text():
                buffer += chunk.replace("\r\n", "\n")
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    parsed = parse_block(block)
                    if parsed is not None:
                        self.queue.put_nowait(parsed)
        except httpx.HTTPError:
            pass
        finally:
            self.queue.put_nowait(None)

    async def next(self, timeout: float = 5.0, *, comments: bool = False) -> SSE:
        """The next event (comments skipped unless asked for); ``TimeoutError`` if none."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self.queue.get()
                if found is None:
                    self.queue.put_nowait(None)
                    raise EOFError("the stream ended")
                if comments or found.kind != "comment":
                    return found

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.next(seconds)
        except (TimeoutError, EOFError):
            return True
        return False

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def open_stream(client: httpx.AsyncClient, path: str, **kwargs: Any) -> AsyncIterator[StreamReader]:
    async with client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, response.status_code
        reader = StreamReader(response)
        try:
            yield reader
        finally:
            await reader.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app: Any, stop: Any = None) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port (lifespan included); yields its
    base URL. ``stop()`` is called before shutdown (e.g. to end live streams)."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="warning",
        lifespan="on", timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        if stop is not None:
            stop()
        server.should_exit = True
        await asyncio.wait_for(task, 10)

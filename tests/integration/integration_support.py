"""Helpers for the integration tests: Datastar SSE parsing, an in-process uvicorn server and
a live-stream reader with bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

# tests/http is on sys.path (see conftest.py): one SSE parser and reader for both suites
from sm_http import DATASTAR, SSEEvent, SSEReader, free_port, parse_sse

__all__ = ["DATASTAR", "SSEEvent", "parse_sse"]


def signals_of(text: str) -> list[dict[str, Any]]:
    return [e.signals for e in parse_sse(text) if e.type == "datastar-patch-signals"]


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


class StreamReader(SSEReader):
    """``SSEReader`` with the longer default wait of the integration tests."""

    async def next(self, timeout: float = 5.0, *, comments: bool = False) -> SSEEvent:
        return await super().next(timeout, comments=comments)


@contextlib.asynccontextmanager
async def open_stream(client: httpx.AsyncClient, path: str, **kwargs: Any) -> AsyncIterator[StreamReader]:
    async with client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, response.status_code
        reader = StreamReader(response)
        try:
            yield reader
        finally:
            await reader.close()


@contextlib.asynccontextmanager
async def serve(app: Any, stop: Any = None) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port (lifespan included); yields its
    base URL. ``stop()`` is called before shutdown (e.g. to end live streams)."""
    port = free_port()
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

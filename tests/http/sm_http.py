"""Helpers for HTTP tests: Datastar requests, clients over ASGI and over a real socket.

Server-Sent Events are read with the test kit's ``parse_sse`` / ``SSEReader`` and in-process
requests go through its ASGI transport (``starmodel.testing``), re-exported here.
"""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from starmodel import StarModel
from starmodel.testing import AsgiTransport, SSEEvent, SSEReader, parse_sse

__all__ = [
    "BASE_URL",
    "DATASTAR",
    "SSEEvent",
    "SSEReader",
    "asgi_client",
    "free_port",
    "live_server",
    "merged_signals",
    "of_type",
    "open_stream",
    "parse_sse",
    "post_event",
    "socket_client",
    "state_signals",
]

DATASTAR = {"Datastar-Request": "true"}
BASE_URL = "http://testserver"


def of_type(events: list[SSEEvent], kind: str) -> list[SSEEvent]:
    return [e for e in events if e.type == kind]


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


def asgi_client(sm: StarModel, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    """A client talking to the app in-process (its lifespan is not run)."""
    transport = AsgiTransport(sm.app, raise_app_exceptions=raise_app_exceptions)
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

    For what only a real server shows: sockets, HTTP parsing, uvicorn's own handling.
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

"""Calling a bench app's ASGI callable directly, the way uvicorn would (same scope shape, ASGI
spec 2.3): shared by ``profile_event.py`` and ``profile_sql_event.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Message = dict[str, Any]


def make_scope(path: str, query_string: bytes, cookie: str | None) -> dict[str, Any]:
    """An HTTP scope like uvicorn's for the benchmark's event request ``POST path?query``."""
    headers = [(b"datastar-request", b"true")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return http_scope("POST", path, query_string, headers, body=b"{}")


def http_scope(
    method: str, path: str, query_string: bytes, headers: list[tuple[bytes, bytes]], *, body: bytes = b""
) -> dict[str, Any]:
    """An HTTP scope like uvicorn's, with a JSON body of ``len(body)`` bytes."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": headers,
        "state": {},
    }


async def call_scope(
    app: AsgiApp, scope: dict[str, Any], body: bytes = b"{}"
) -> tuple[int, dict[str, str], bytes]:
    """One request (with ``body``) through ``app``: status, headers and body of its answer."""
    sent: list[Message] = []
    done = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])

"""The benchmarks' requests, made straight into an app's ASGI callable as uvicorn would make
them: scopes of uvicorn's shape (ASGI spec 2.3) for the test kit's ``call_asgi``, which runs
one request with nothing in between. Shared by ``profile_event.py``, ``profile_sql_event.py``
and ``crud_api.py``."""

from __future__ import annotations

from typing import Any

from starmodel.testing.asgi import AsgiApp, AsgiResponse, call_asgi, http_scope

__all__ = ["AsgiApp", "AsgiResponse", "call_asgi", "event_scope", "request_scope"]


def event_scope(path: str, query_string: bytes, cookie: str | None) -> dict[str, Any]:
    """The scope of the benchmark's event request ``POST path?query`` (a ``{}`` body)."""
    headers = [(b"datastar-request", b"true")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return request_scope("POST", path, query_string, headers, body=b"{}")


def request_scope(
    method: str, path: str, query_string: bytes, headers: list[tuple[bytes, bytes]], *, body: bytes = b""
) -> dict[str, Any]:
    """The scope of a request with ``headers`` and a JSON body of ``len(body)`` bytes."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return http_scope(method, path, query_string=query_string, headers=headers)

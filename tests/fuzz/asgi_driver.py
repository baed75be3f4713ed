"""Raw requests to an ASGI app in this process: any method, path, query bytes, header bytes and
body (what a server would hand over, no client library tidying it), and the answer read whole,
or up to its first part and then the connection dropped (streams never end by themselves)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "Request", "send"]

STREAM_GRACE = 0.02
"""How long a streaming answer is read after its first part before the client leaves."""
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    def describe(self) -> str:
        shown = [f"{self.method} {self.path!r}"]
        if self.query:
            shown.append(f"query={self.query[:300]!r}")
        shown.extend(f"{name.decode()}: {value[:120]!r}" for name, value in self.headers)
        if self.body:
            shown.append(f"body={self.body[:300]!r} ({len(self.body)} bytes)")
        return "\n  ".join(shown)


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    error: BaseException | None = None  # what the app raised (after answering 500, if it did)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def cookies(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in self.headers:
            if key.lower() == b"set-cookie":
                name, _, rest = value.decode("latin-1").partition("=")
                found[name.strip()] = rest.split(";", 1)[0]
        return found


async def send(app: Any, request: Request, state: dict[str, Any]) -> Answer:
    """Send ``request`` to ``app`` and read its answer (status 0 if it never answered)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode("utf-8", "surrogateescape"),
        "query_string": request.query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *request.headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "state": dict(state),
    }
    answer = Answer(0)
    parts: list[bytes] = []
    body_read = False
    first_part = asyncio.Event()
    ended = asyncio.Event()
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def reply(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(bytes(message.get("body", b"")))
            first_part.set()
            if not message.get("more_body", False):
                ended.set()

    async def run() -> None:
        try:
            await app(scope, receive, reply)
        except Exception as exc:
            answer.error = exc
        finally:
            first_part.set()
            ended.set()

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(first_part.wait(), ANSWER_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), STREAM_GRACE)
    except TimeoutError:
        pass
    gone.set()  # the client leaves: a stream still open ends
    try:
        await asyncio.wait_for(asyncio.shield(task), ANSWER_TIMEOUT)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    answer.body = b"".join(parts)
    return answer

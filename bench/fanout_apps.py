"""The two ASGI apps compared by ``fanout.py``; each is served by its own uvicorn.

Both keep one global counter, open long-lived SSE streams, and deliver every increment of the
counter to every open stream as one ``datastar-patch-signals`` event
``{"bench_global": {"count": n}}``:

* ``build_starmodel_app``: StarModel's own live stream (``GET /_starmodel/live``) with a
  ``scope="global"`` entity, ``BenchGlobal``, whose ``@event increment`` changes it; the change
  reaches the streams through the bus and the live hub, like the demo's ``SharedCounter``.
* ``build_broadcast_app``: a hand-written FastHTML broadcaster, the datastar-py way: ``GET /live``
  gives each connection an ``asyncio.Queue`` and answers ``DatastarResponse`` over an async
  generator reading it; ``POST /bench_global/increment`` bumps the counter and puts one
  ``SSE.patch_signals(...)`` into every queue.

Both send the current value as the first message of a stream, and both answer the POST with the
new value (the clicking tab's own answer). Both use the same session cookie (name, secret and
signed format: StarModel's ``SignedCookieSessions`` reads Starlette's format), so the load
process can sign one cookie per simulated browser and send it to either app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from datastar_py.fasthtml import DatastarResponse
from datastar_py.fasthtml import ServerSentEventGenerator as SSE
from datastar_py.sse import DatastarEvent
from fasthtml.common import FastHTML

from starmodel import Entity, StarModel, event
from starmodel.adapters.driving.web.fasthtml import LIVE_PATH
from starmodel.adapters.driving.web.identity import SESSION_KEY

__all__ = [
    "BROADCAST_LIVE_PATH",
    "COOKIE",
    "EVENT_PATH",
    "NAMESPACE",
    "SECRET",
    "SESSION_KEY",
    "STARMODEL_LIVE_PATH",
    "build_broadcast_app",
    "build_starmodel_app",
]

SECRET = "bench"
COOKIE = "starmodel_session"
NAMESPACE = "bench_global"
EVENT_PATH = f"/{NAMESPACE}/increment"
STARMODEL_LIVE_PATH = LIVE_PATH
BROADCAST_LIVE_PATH = "/live"


class BenchGlobal(Entity):
    """One counter for everybody, declared like the demo's ``SharedCounter``."""

    count: int = 0
    model_config = {"scope": "global", "namespace": NAMESPACE}

    @event
    def increment(self, amount: int = 1) -> None:
        self.count += amount


def build_starmodel_app() -> Any:
    """(a) The full StarModel stack serving ``BenchGlobal`` only, with its live stream."""
    return StarModel(entities=[BenchGlobal], secret_key=SECRET).app


def _signals(count: int) -> dict[str, Any]:
    """The signals patch both apps send (StarModel nests a change under the entity namespace)."""
    return {NAMESPACE: {"count": count}}


def build_broadcast_app() -> FastHTML:
    """(b) The hand-written baseline: one ``asyncio.Queue`` per open stream, filled by the POST.

    The FastHTML construction (session middleware, cookie name, secret) is the one
    ``bench_apps.py`` uses for its hand-written apps. The stream has no heartbeat and no
    slow-consumer limit: it is the least a broadcaster can do.
    """
    app = FastHTML(
        secret_key=SECRET,
        session_cookie=COOKIE,
        default_hdrs=False,
        htmx=False,
        surreal=False,
    )
    queues: set[asyncio.Queue[DatastarEvent]] = set()
    counter = {"count": 0}

    async def stream(queue: asyncio.Queue[DatastarEvent]) -> AsyncIterator[DatastarEvent]:
        # Registered once the response starts, like StarModel's stream: a client gone before
        # the first read leaves nothing behind.
        queues.add(queue)
        try:
            yield SSE.patch_signals(_signals(counter["count"]))
            while True:
                yield await queue.get()
        finally:
            queues.discard(queue)

    @app.get(BROADCAST_LIVE_PATH)
    async def live() -> DatastarResponse:
        return DatastarResponse(stream(asyncio.Queue()))

    @app.post(EVENT_PATH)
    async def increment() -> DatastarResponse:
        counter["count"] += 1
        patch = SSE.patch_signals(_signals(counter["count"]))
        for queue in queues:
            queue.put_nowait(patch)
        return DatastarResponse(patch)

    return app

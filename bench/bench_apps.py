"""The three ASGI apps compared by ``event_throughput.py``; each is served by its own uvicorn.

Each is built by a factory (``uvicorn --factory bench_apps:build_...``), so a server process
builds only the app it serves:

* ``build_starmodel_app``: the full StarModel path (entity, ``@event``, dispatcher, unit of work).
* ``build_datastar_app``: a hand-written FastHTML route answering datastar-py's
  ``DatastarResponse``.
* ``build_plain_app``: the same route returning a plain Starlette ``Response`` with the same body.

FastHTML injects ``session`` by parameter *name* only when it is unannotated, so the two
hand-written handlers leave that one parameter untyped.

All three answer ``POST /bench_counter/increment`` by incrementing a per-session counter and
sending one ``datastar-patch-signals`` event ``{"bench_counter": {"count": n}}``.
"""

from __future__ import annotations

import secrets
from typing import Any

from datastar_py.fasthtml import SSE_HEADERS, DatastarResponse
from datastar_py.fasthtml import ServerSentEventGenerator as SSE
from fasthtml.common import FastHTML
from starlette.responses import Response

from starmodel import Entity, StarModel, event

__all__ = [
    "EVENT_PATH",
    "build_datastar_app",
    "build_plain_app",
    "build_starmodel_app",
    "build_starmodel_metrics_app",
    "build_starmodel_tracing_app",
]

EVENT_PATH = "/bench_counter/increment"
SECRET = "bench"
COOKIE = "starmodel_session"
SID_KEY = "bench_sid"


class BenchCounter(Entity):
    """One counter per browser session, exactly like the demo's ``Counter``."""

    count: int = 0

    @event
    def increment(self, amount: int = 1) -> None:
        self.count += amount


def _fasthtml() -> FastHTML:
    """The FastHTML construction shared by the two hand-written apps (same session cost)."""
    return FastHTML(
        secret_key=SECRET,
        session_cookie=COOKIE,
        default_hdrs=False,
        htmx=False,
        surreal=False,
    )


def _bump(counts: dict[str, int], session: dict[str, Any]) -> int:
    """Increment the counter of the session's id (created on first use) and return it."""
    sid = session.get(SID_KEY)
    if not isinstance(sid, str):
        sid = secrets.token_urlsafe(18)
        session[SID_KEY] = sid
    counts[sid] = counts.get(sid, 0) + 1
    return counts[sid]


def _signals(count: int) -> dict[str, Any]:
    """The signals patch every app sends (StarModel nests them under the entity namespace)."""
    return {"bench_counter": {"count": count}}


def build_datastar_app() -> FastHTML:
    """(b) The route the datastar-py SDK teaches: ``DatastarResponse(SSE.patch_signals(...))``."""
    app = _fasthtml()
    counts: dict[str, int] = {}

    @app.post(EVENT_PATH)
    async def increment(session) -> DatastarResponse:  # type: ignore[no-untyped-def]
        return DatastarResponse(SSE.patch_signals(_signals(_bump(counts, session))))

    return app


def build_plain_app() -> FastHTML:
    """(c) The same route answering with a plain, non-streaming Starlette ``Response``."""
    app = _fasthtml()
    counts: dict[str, int] = {}

    @app.post(EVENT_PATH)
    async def increment(session) -> Response:  # type: ignore[no-untyped-def]
        body = str(SSE.patch_signals(_signals(_bump(counts, session))))
        return Response(body, media_type="text/event-stream", headers=dict(SSE_HEADERS))

    return app


def build_starmodel_app() -> Any:
    """(a) The full StarModel stack serving ``BenchCounter`` only."""
    return StarModel(entities=[BenchCounter], secret_key=SECRET).app


def build_starmodel_metrics_app() -> Any:
    """(a) with Prometheus metrics on (``operations_cost.py``)."""
    return StarModel(entities=[BenchCounter], secret_key=SECRET, metrics=True).app


def build_starmodel_tracing_app() -> Any:
    """(a) with OpenTelemetry tracing on, spans made by the SDK and handed in batches to an
    exporter that drops them (what a real exporter adds is its own network cost)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(provider)
    return StarModel(entities=[BenchCounter], secret_key=SECRET, tracing=True).app

"""Prometheus metrics at ``GET /_starmodel/metrics`` (``STARMODEL_METRICS=1``).

What is counted: events by entity, event and status, and how long they take; open live
streams; facts published on the bus and delivered from it; store outages met by events.

Several server processes (``starmodel run --workers N``) each count their own; when
``PROMETHEUS_MULTIPROC_DIR`` names a folder (``starmodel run`` makes one for its workers), each
process writes its figures there and any of them answers with the sum of all of them.
``prometheus_client`` is imported only when metrics are on.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from bisect import bisect_left
from collections.abc import Callable, Generator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from starmodel.app.observe import EventObserver, ObservedEvent
from starmodel.core.ports import EventBus

__all__ = ["METRICS_PATH", "PrometheusMetrics"]

METRICS_PATH = "/_starmodel/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# from 1 ms (an event on memory) to 10 s (one waiting out a store's timeout)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics(EventObserver):
    """The app's metrics, and the endpoint that shows them.

    Args:
        open_streams: how many live streams this process holds now (read when the figure is
            wanted: at a scrape, or every second with several processes).
        token: when set, only requests with ``Authorization: Bearer <token>`` see them.
    """

    def __init__(self, open_streams: Callable[[], int], token: str | None = None) -> None:
        self.token = token
        self.open_streams = open_streams
        self.shared = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        registry = self.registry
        self.events = Counter(
            "starmodel_events", "Events run, by entity, event and status (ok, invalid, denied, "
            "not_found, conflict, limited, unavailable, cancelled, error).",
            ["entity", "event", "status"], registry=registry,
        )
        self.durations = Histogram(
            "starmodel_event_duration_seconds", "Seconds from an event's request to its answer.",
            ["entity", "event"], buckets=_BUCKETS, registry=registry,
        )
        self.live_streams = Gauge(
            "starmodel_live_streams", "Live streams open now.", registry=registry,
            multiprocess_mode="livesum",
        )
        self.published = Counter(
            "starmodel_bus_messages_published", "Facts published on the bus, by type.",
            ["type"], registry=registry,
        )
        self.received = Counter(
            "starmodel_bus_messages_received",
            "Facts the bus delivered to this process's live streams and everywhere-subscribers, by type.",
            ["type"], registry=registry,
        )
        self.store_errors = Counter(
            "starmodel_store_errors", "Events refused because a store was unreachable, by the "
            "event's store (server_sql, server_redis, server_memory, or a plugin's name).",
            ["store"], registry=registry,
        )
        self._events: dict[tuple[str, str, str], Callable[[], None]] = {}
        self._durations: dict[tuple[str, str], Callable[[float], None]] = {}
        self._types: dict[tuple[bool, type], Callable[[], None]] = {}
        if not self.shared:
            self.live_streams.set_function(open_streams)
        self._refresher: asyncio.Task[None] | None = None

    # --- what is counted ----------------------------------------------------------------

    def finished(self, call: ObservedEvent) -> None:
        key = (call.entity, call.event, call.status)
        count = self._events.get(key)
        if count is None:
            count = self._events[key] = _adder(self.events.labels(*key))
        count()
        observe = self._durations.get(key[:2])
        if observe is None:
            observe = self._durations[key[:2]] = _observer(self.durations.labels(*key[:2]))
        observe(call.duration)
        if call.status == "unavailable":
            self.store_errors.labels(call.store).inc()

    def watch_bus(self, bus: EventBus) -> None:
        """Count what ``bus`` publishes here and what it delivers here."""
        bus.subscribe(object, self._on_published)
        bus.subscribe(object, self._on_received, everywhere=True)

    # bus handlers are awaited once per fact: these count at once and hand back an awaitable
    # that is already done, which costs a fraction of running a coroutine

    def _on_published(self, fact: Any) -> _Done:
        self._count(False, fact)
        return _DONE

    def _on_received(self, fact: Any) -> _Done:
        self._count(True, fact)
        return _DONE

    def _count(self, received: bool, fact: Any) -> None:
        slot = (received, type(fact))
        count = self._types.get(slot)
        if count is None:
            family = self.received if received else self.published
            count = self._types[slot] = _adder(family.labels(type(fact).__name__))
        count()

    # --- the endpoint -------------------------------------------------------------------

    def text(self) -> bytes:
        """The metrics in Prometheus's text format (of every process sharing the folder, in
        multiprocess mode)."""
        if self.shared:
            self.live_streams.set(self.open_streams())  # this process's figure, fresh
            gathered = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(gathered)
            return bytes(generate_latest(gathered))
        return bytes(generate_latest(self.registry))

    async def handle(self, request: Request) -> Response:
        """``GET /_starmodel/metrics``: the metrics, or 401 without the right bearer token."""
        if self.token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            right = hmac.compare_digest(given.strip().encode(), self.token.encode())
            if scheme.lower() != "bearer" or not right:
                return PlainTextResponse(
                    "Metrics need Authorization: Bearer <token>", 401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return Response(self.text(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    async def process_starting(self) -> None:
        """With several processes, each writes its count of live streams every second (the
        one answering a scrape cannot count the others')."""
        if self.shared and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_live_streams())

    async def _refresh_live_streams(self) -> None:
        while True:
            self.live_streams.set(self.open_streams())
            await asyncio.sleep(1.0)

    async def process_stopping(self) -> None:
        """With several processes, drop this process's live-stream figure (it holds none now)."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.shared:
            prometheus_multiprocess.mark_process_dead(os.getpid())


class _Done:
    """An awaitable that is already done (awaiting it returns ``None`` at once)."""

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()


def _adder(child: Any) -> Callable[[], None]:
    """``child.inc()``, by its value directly when prometheus-client's counter child keeps one
    (it always has; the checks ``inc`` makes first cost more than the increment)."""
    value = getattr(child, "_value", None)
    if value is None or not hasattr(value, "inc"):
        return lambda: child.inc()
    return lambda: value.inc(1)


def _observer(child: Any) -> Callable[[float], None]:
    """``child.observe(seconds)``, likewise by the histogram child's sum and buckets."""
    total, buckets, bounds = (getattr(child, name, None) for name in ("_sum", "_buckets", "_upper_bounds"))
    if total is None or buckets is None or bounds is None or len(buckets) != len(bounds):
        return lambda seconds: child.observe(seconds)
    bounds = list(bounds)

    def observe(seconds: float) -> None:
        total.inc(seconds)
        buckets[bisect_left(bounds, seconds)].inc(1)

    return observe

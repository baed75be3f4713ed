"""OpenTelemetry traces (``STARMODEL_TRACING=1``, ``pip install 'starmodel[otel]'``).

A span per HTTP request (continuing the caller's trace when the request carries a W3C
``traceparent``), inside it a span per event named ``Entity.event``, and inside that one per
part of the event: ``load``, ``body``, ``commit``, ``publish``. A fact published on the Redis
bus carries the publishing span's context; the process that delivers it starts a ``deliver``
span linked back to it, so a change can be followed from the click to every process that
pushed it to its tabs.

Spans go to the global tracer provider: configure the OpenTelemetry SDK (exporter, sampler)
in the app, or with the ``OTEL_*`` environment variables and ``opentelemetry-instrument``.
This module is imported only when tracing is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from starmodel.adapters.driving.operations.request_watch import RequestCall, RequestObserver
from starmodel.app.observe import EventObserver, ObservedEvent

__all__ = ["BusTracing", "EventTracing", "RequestTracing"]

_PROPAGATED = (b"traceparent", b"tracestate")


def _tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer("starmodel", tracer_provider=provider)


class RequestTracing(RequestObserver):
    """A server span per HTTP request, the current span while the app handles it."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.tracer = _tracer(provider)

    def started(self, request: RequestCall) -> None:
        carrier = {name.decode(): request.headers[name].decode("latin-1")
                   for name in _PROPAGATED if name in request.headers}
        parent = propagate.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            request.method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path,
                        "starmodel.request_id": request.request_id},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        request.notes[id(self)] = (span, token)

    def responded(self, request: RequestCall) -> None:
        span, _ = request.notes[id(self)]
        span.set_attribute("http.response.status_code", request.status)

    def finished(self, request: RequestCall) -> None:
        span, token = request.notes.pop(id(self))
        if request.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        otel_context.detach(token)
        span.end()


class EventTracing(EventObserver):
    """A span per event (a child of the request's), with a child per part of the event."""

    times_phases = True

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.tracer = _tracer(provider)

    def started(self, call: ObservedEvent) -> None:
        span = self.tracer.start_span(
            f"{call.entity}.{call.event}", kind=SpanKind.INTERNAL,
            attributes={"starmodel.entity": call.entity, "starmodel.event": call.event,
                        "starmodel.store": call.store},
        )
        call.notes[id(self)] = (span, otel_context.attach(trace.set_span_in_context(span)))

    def finished(self, call: ObservedEvent) -> None:
        span, token = call.notes.pop(id(self))
        span.set_attribute("starmodel.status", call.status)
        if call.status == "error" and isinstance(call.error, Exception):
            span.record_exception(call.error)
            span.set_status(Status(StatusCode.ERROR, type(call.error).__name__))
        otel_context.detach(token)
        span.end()

    def phase(self, call: ObservedEvent, name: str) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name)


class BusTracing:
    """What the Redis bus carries of traces: the publishing span's context goes with each
    fact (``inject``); delivering it in a process runs inside a ``deliver`` span linked back
    to it (``delivering``)."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.tracer = _tracer(provider)

    def inject(self) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None

    @contextmanager
    def delivering(self, carried: Any, fact: Any) -> Iterator[None]:
        links: list[Link] = []
        if isinstance(carried, dict) and all(isinstance(v, str) for v in carried.values()):
            remote = trace.get_current_span(propagate.extract(carried)).get_span_context()
            if remote.is_valid:
                links.append(Link(remote))
        with self.tracer.start_as_current_span(
            f"deliver {type(fact).__name__}", kind=SpanKind.CONSUMER, links=links,
            attributes={"starmodel.fact": type(fact).__name__},
        ):
            yield

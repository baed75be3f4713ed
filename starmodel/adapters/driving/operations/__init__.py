"""What operators watch: request ids, JSON logs, Prometheus metrics, OpenTelemetry traces.

``install_operations`` wires them into an app from its settings: the request middleware
(always: every answer carries an ``X-Request-ID``), and the observers each setting asks for.
Metrics and tracing import their libraries only when they are on.
"""

from __future__ import annotations

from starlette.routing import Route

from starmodel.adapters.driving.operations.logs import EventLog, RequestLog, use_json_logs
from starmodel.adapters.driving.operations.request_watch import RequestObserver, RequestWatch
from starmodel.adapters.driving.web.event_route import front
from starmodel.adapters.driving.web.fasthtml import WebApp
from starmodel.app.observe import BusTracer, EventObserver
from starmodel.core.errors import ConfigurationError

__all__ = ["install_operations"]


def install_operations(web: WebApp) -> BusTracer | None:
    """Add request ids to ``web`` and the logs, metrics and traces its settings turn on.

    Returns what a bus spanning processes should carry of traces (``None`` when tracing is
    off); the composition root hands it to the bus.
    """
    settings = web.settings
    requests: list[RequestObserver] = []
    events: list[EventObserver] = []
    if settings.tracing:  # first: the request's span is current while the others run
        try:
            from starmodel.adapters.driving.operations.tracing import BusTracing, EventTracing, RequestTracing
        except ImportError as exc:
            raise ConfigurationError(
                f"tracing needs OpenTelemetry ({exc.name} is missing): pip install 'starmodel[otel]'"
            ) from None
        requests.append(RequestTracing())
        events.append(EventTracing())
        bus_tracer: BusTracer | None = BusTracing()
    else:
        bus_tracer = None
    if settings.log_format == "json":
        use_json_logs()
        requests.append(RequestLog())
        events.append(EventLog())
    if settings.metrics:
        from starmodel.adapters.driving.operations.metrics import METRICS_PATH, PrometheusMetrics

        metrics = PrometheusMetrics(web.hub.open_count, settings.metrics_token)
        events.append(metrics)
        metrics.watch_bus(web.bus)
        routes = web.app.router.routes
        routes.insert(front(routes), Route(METRICS_PATH, metrics.handle, methods=["GET"]))
        web.startup_hooks.append(metrics.process_starting)
        web.shutdown_hooks.append(metrics.process_stopping)
    web.dispatcher.observers.extend(events)
    web.app.add_middleware(RequestWatch, observers=requests)
    return bus_tracer

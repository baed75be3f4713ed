"""OpenTelemetry traces, read back from the SDK's in-memory exporter: a span per request and
per event with its parts, an incoming traceparent continued, a delivery over the Redis bus
linked back to the publishing span; and nothing imported when tracing is off."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from ops_kit import DATASTAR, client, make_app

REDIS_URL = "redis://127.0.0.1:6379/0"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    """The process's tracer provider (OpenTelemetry allows one), exporting to memory."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def named(found: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]


async def test_a_span_per_event_with_its_parts_inside_the_request_span(spans) -> None:
    async with client(make_app(tracing=True)) as http:
        answer = await http.post("/ops_tally/add?amount=2", headers={**DATASTAR, "X-Request-ID": "trace-me"})
        assert answer.status_code == 200
    found = spans.get_finished_spans()
    [request] = named(found, "POST")
    [event] = named(found, "Tally.add")
    assert request.kind is SpanKind.SERVER and request.parent is None
    assert request.attributes["url.path"] == "/ops_tally/add"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["starmodel.request_id"] == "trace-me"
    assert event.parent.span_id == request.context.span_id
    assert event.attributes["starmodel.status"] == "ok"
    assert event.attributes["starmodel.store"] == "server_memory"
    inside = [span for span in found if span.parent and span.parent.span_id == event.context.span_id]
    parts = {span.name: span for span in inside}
    assert set(parts) == {"load", "body", "commit", "publish"}
    assert parts["load"].end_time <= parts["body"].start_time
    assert parts["body"].end_time <= parts["commit"].start_time <= parts["commit"].end_time
    assert parts["commit"].end_time <= parts["publish"].start_time
    assert {span.context.trace_id for span in found} == {request.context.trace_id}


async def test_an_incoming_traceparent_is_continued(spans) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with client(make_app(tracing=True)) as http:
        headers = {**DATASTAR, "traceparent": f"00-{trace_id}-{parent_id}-01"}
        assert (await http.post("/ops_tally/add", headers=headers)).status_code == 200
    [request] = named(spans.get_finished_spans(), "POST")
    assert request.context.trace_id == int(trace_id, 16)
    assert request.parent is not None and request.parent.span_id == int(parent_id, 16)
    assert request.parent.is_remote
    [event] = named(spans.get_finished_spans(), "Tally.add")
    assert event.context.trace_id == int(trace_id, 16)


async def test_a_malformed_traceparent_starts_a_new_trace(spans) -> None:
    async with client(make_app(tracing=True)) as http:
        headers = {**DATASTAR, "traceparent": "00-not-a-trace-01"}
        assert (await http.post("/ops_tally/add", headers=headers)).status_code == 200
    [request] = named(spans.get_finished_spans(), "POST")
    assert request.parent is None


async def test_a_failing_event_marks_its_span(spans) -> None:
    async with client(make_app(tracing=True)) as http:
        assert (await http.post("/ops_tally/crash", headers=DATASTAR)).status_code == 500
        assert (await http.post("/ops_tally/add?amount=1000", headers=DATASTAR)).status_code == 422
    [crash] = named(spans.get_finished_spans(), "Tally.crash")
    assert crash.status.status_code is StatusCode.ERROR
    assert crash.attributes["starmodel.status"] == "error"
    assert [e.name for e in crash.events] == ["exception"]
    [refused] = named(spans.get_finished_spans(), "Tally.add")
    assert refused.attributes["starmodel.status"] == "invalid"
    assert refused.status.status_code is not StatusCode.ERROR  # the caller's mistake, not the app's
    requests = named(spans.get_finished_spans(), "POST")
    [request] = [span for span in requests if span.attributes["url.path"] == "/ops_tally/crash"]
    assert request.status.status_code is StatusCode.ERROR


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"smops{secrets.token_hex(4)}"
    yield name
    connection = redis.Redis.from_url(REDIS_URL)
    keys = list(connection.scan_iter(match=f"{name}:*"))
    if keys:
        connection.delete(*keys)
    connection.close()


async def test_a_delivery_in_another_process_links_back_through_the_bus(spans, prefix: str) -> None:
    """Two apps sharing one Redis bus stand for two server processes: the fact of an event
    run on the first reaches the second with the publishing span's context."""
    first = make_app(tracing=True, redis_url=REDIS_URL, redis_prefix=prefix)
    second = make_app(tracing=True, redis_url=REDIS_URL, redis_prefix=prefix)
    async with client(first) as one, client(second) as two:
        assert (await one.post("/ops_tally/add", headers=DATASTAR)).status_code == 200
        for _ in range(250):  # until both processes delivered it (5 s at most)
            if len(named(spans.get_finished_spans(), "deliver EntityChanged")) >= 2:
                break
            await asyncio.sleep(0.02)
        assert (await two.get("/favicon.ico")).status_code == 204
    found = spans.get_finished_spans()
    [publish] = named(found, "publish")
    deliveries = named(found, "deliver EntityChanged")
    assert len(deliveries) == 2  # once in each process
    for delivery in deliveries:
        assert delivery.kind is SpanKind.CONSUMER
        assert [link.context.span_id for link in delivery.links] == [publish.context.span_id]
        assert delivery.links[0].context.trace_id == publish.context.trace_id


def test_tracing_without_opentelemetry_is_one_clear_error(tmp_path: Path) -> None:
    out = _run_without_opentelemetry(tmp_path, "make_app(tracing=True)")
    assert "ConfigurationError: tracing needs OpenTelemetry (opentelemetry is missing): " \
           "pip install 'starmodel[otel]'" in out


def test_nothing_is_imported_when_tracing_and_metrics_are_off(tmp_path: Path) -> None:
    out = _run_without_opentelemetry(tmp_path, textwrap.dedent('''
        import asyncio
        from ops_kit import DATASTAR, client

        async def main():
            async with client(make_app()) as http:
                answer = await http.post("/ops_tally/add", headers=DATASTAR)
                assert answer.status_code == 200, answer.text

        asyncio.run(main())
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("opentelemetry", "prometheus_client")
                        or n.endswith(("operations.tracing", "operations.metrics")))
        print("loaded:", loaded)
    '''))
    assert "loaded: []" in out, out


def _run_without_opentelemetry(tmp_path: Path, code: str) -> str:
    """Run ``code`` in a fresh interpreter where OpenTelemetry cannot be imported (as if the
    extra were not installed); its output."""
    program = textwrap.dedent(f'''
        import importlib.abc, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})

        class NoOpenTelemetry(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, NoOpenTelemetry())
        from ops_kit import make_app
    ''') + code
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    return done.stdout + done.stderr

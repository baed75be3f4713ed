"""Prometheus metrics at /_starmodel/metrics: off by default, counts of events by status,
durations, bus messages, store outages, and the bearer token."""

from __future__ import annotations

import httpx
import pytest
from ops_kit import DATASTAR, Tally, client, make_app
from prometheus_client.parser import text_string_to_metric_families

from starmodel import Entity, Settings, StateStore, event

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the metrics text (``None`` if it is not there)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


async def test_metrics_are_off_by_default() -> None:
    async with client(make_app()) as http:
        assert (await http.get("/_starmodel/metrics")).status_code == 404


async def test_events_are_counted_by_status_and_timed() -> None:
    async with client(make_app(metrics=True)) as http:
        for _ in range(3):
            assert (await http.post("/ops_tally/add", headers=DATASTAR)).status_code == 200
        assert (await http.post("/ops_tally/add?amount=1000", headers=DATASTAR)).status_code == 422
        assert (await http.post("/ops_tally/crash", headers=DATASTAR)).status_code == 500
        answer = await http.get("/_starmodel/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    text = answer.text
    events = "starmodel_events_total"
    assert sample(text, events, entity="Tally", event="add", status="ok") == 3
    assert sample(text, events, entity="Tally", event="add", status="invalid") == 1
    assert sample(text, events, entity="Tally", event="crash", status="error") == 1
    duration = "starmodel_event_duration_seconds"
    assert sample(text, f"{duration}_count", entity="Tally", event="add") == 4
    assert 0 < (sample(text, f"{duration}_sum", entity="Tally", event="add") or 0) < 5
    assert sample(text, f"{duration}_bucket", entity="Tally", event="add", le="+Inf") == 4
    # three commits, three facts: published here and delivered here (one process)
    assert sample(text, "starmodel_bus_messages_published_total", type="EntityChanged") == 3
    assert sample(text, "starmodel_bus_messages_received_total", type="EntityChanged") == 3
    assert sample(text, "starmodel_live_streams") == 0


class RedisNote(Entity):
    model_config = {"namespace": "ops_redis_note", "scope": "global", "store": StateStore.SERVER_REDIS}
    text: str = ""

    @event
    def write(self, text: str) -> None:
        self.text = text


async def test_an_unreachable_store_is_counted_by_store() -> None:
    sm = make_app(RedisNote, Tally, metrics=True, redis_url=DEAD_REDIS, store_timeout=0.3)
    transport = httpx.ASGITransport(app=sm.app)  # not started: no waiting for the dead bus
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        down = await http.post("/ops_redis_note/write?text=hi", headers=DATASTAR)
        assert down.status_code == 503
        text = (await http.get("/_starmodel/metrics")).text
    assert sample(text, "starmodel_store_errors_total", store="server_redis") == 1
    events = "starmodel_events_total"
    assert sample(text, events, entity="RedisNote", event="write", status="unavailable") == 1
    await sm.services.close()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic c2NyYXBlOnM=", "Bearer"])
async def test_a_metrics_token_refuses_other_callers(authorization: str | None) -> None:
    sm = make_app(metrics=True, metrics_token="s3cret-scrape")
    async with client(sm) as http:
        headers = {"Authorization": authorization} if authorization else {}
        refused = await http.get("/_starmodel/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "starmodel_events" not in refused.text
        allowed = await http.get("/_starmodel/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert allowed.status_code == 200 and "starmodel_live_streams" in allowed.text


def test_metrics_settings_from_the_environment() -> None:
    settings = Settings.from_env({"STARMODEL_METRICS": "1", "STARMODEL_METRICS_TOKEN": "t"})
    assert settings.metrics is True and settings.metrics_token == "t"
    assert Settings.from_env({}).metrics is False


async def test_open_live_streams_are_counted() -> None:
    sm = make_app(metrics=True)
    async with client(sm) as http:
        bodies = [sm.open_live_stream(f"session-{n}", f"tab-{n}")[1] for n in (1, 2)]
        for body in bodies:
            await body.__anext__()  # the tab's state: the stream is open
        assert sample((await http.get("/_starmodel/metrics")).text, "starmodel_live_streams") == 2
        for body in bodies:
            await body.aclose()
        assert sample((await http.get("/_starmodel/metrics")).text, "starmodel_live_streams") == 0


async def test_tally_events_of_two_apps_are_counted_apart() -> None:
    first, second = make_app(metrics=True), make_app(metrics=True)
    async with client(first) as one, client(second) as two:
        await one.post("/ops_tally/add", headers=DATASTAR)
        text = (await two.get("/_starmodel/metrics")).text
    assert sample(text, "starmodel_events_total", entity="Tally", event="add", status="ok") is None
    assert Tally.namespace() == "ops_tally"

"""``@event(background=True)``: the answer comes at once, the work goes on, and every tab
showing the entity (the calling one included) sees its progress on the live stream."""

import asyncio

import pytest
from sm_http import DATASTAR, live_server, open_stream, post_event, socket_client

from starmodel import Entity, StarModel, event

LIVE = "/_starmodel/live"


class Job(Entity):
    model_config = {"scope": "global", "namespace": "bg_job"}
    done: int = 0
    status: str = "idle"

    @event(background=True)
    async def run(self, steps: int = 3):
        self.status = "running"
        for step in range(1, steps + 1):
            await asyncio.sleep(0.05)
            self.done = step
            yield None
        self.status = "finished"

    @event(background=True)
    def quick(self):
        self.status = "quick"

    @event(background=True)
    async def explode(self):
        self.status = "exploding"
        yield None
        raise ValueError("the import file is corrupt")

    @event(background=True, allow=lambda ctx: False)
    async def forbidden(self):
        self.status = "should not happen"
        yield None


@pytest.fixture
def sm():
    return StarModel(entities=[Job], secret_key="test")


def tab(tab_id: str) -> dict[str, str]:
    return {**DATASTAR, "X-StarModel-Tab": tab_id}


async def collect_until(live, predicate, limit: int = 20) -> list:
    seen = []
    for _ in range(limit):
        item = await live.next(timeout=3)
        seen.append(item)
        if predicate(item):
            return seen
    raise AssertionError(f"condition not met in {limit} events: {seen}")


async def test_answer_is_immediate_and_the_caller_tab_sees_progress(sm):
    async with (
        live_server(sm) as url,
        socket_client(url) as browser,
        open_stream(browser, "GET", LIVE, headers=tab("caller")) as live,
    ):
        await live.next()  # resync
        started = asyncio.get_running_loop().time()
        response = await post_event(browser, "/bg_job/run", steps=3, headers=tab("caller"))
        assert response.status_code in (200, 204)  # 200 when it clears field errors
        assert asyncio.get_running_loop().time() - started < 0.15  # did not wait for the work
        events = await collect_until(
            live, lambda e: e.type == "datastar-patch-signals"
            and e.signals.get("bg_job", {}).get("status") == "finished"
        )
        dones = [e.signals["bg_job"]["done"] for e in events
                 if e.type == "datastar-patch-signals" and "done" in e.signals["bg_job"]]
        assert dones == [1, 2, 3]
        assert all(e.id for e in events)


async def test_a_plain_background_event_reaches_other_sessions(sm):
    async with (
        live_server(sm) as url,
        socket_client(url) as caller,
        socket_client(url) as viewer,
        open_stream(viewer, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        await live.next()
        assert (await post_event(caller, "/bg_job/quick")).status_code == 204
        pushed = await live.next()
        assert pushed.signals == {"bg_job": {"status": "quick"}}


async def test_a_failing_background_event_is_reported_to_viewers(sm):
    async with live_server(sm) as url, socket_client(url) as browser:
        async with open_stream(browser, "GET", LIVE, headers=tab("t")) as live:
            await live.next()
            assert (await post_event(browser, "/bg_job/explode")).status_code == 204
            events = await collect_until(live, lambda e: e.type == "datastar-patch-elements")
            assert "the import file is corrupt" in events[-1].elements
            assert 'data-variant="error"' in events[-1].elements
        # the step before the failure was committed, the failing one was not
        assert (await sm.load(Job)).status == "exploding"


async def test_a_refused_background_event_is_403_and_never_starts(sm):
    async with live_server(sm) as url, socket_client(url) as browser:
        response = await post_event(browser, "/bg_job/forbidden")
        assert response.status_code == 403
        await asyncio.sleep(0.1)
        assert (await sm.load(Job)).status == "idle"


class Importer(Entity):
    model_config = {"scope": "global", "namespace": "bg_import"}
    done: int = 0
    status: str = "idle"

    @event(background=True)
    async def start(self, rows: int = 100):
        self.status = "importing"
        yield None
        try:
            for row in range(1, rows + 1):
                await asyncio.sleep(0.03)
                self.done = row
                yield None
        except asyncio.CancelledError:
            self.status = "cancelled"
            yield None
            return
        self.status = "imported"

    @event(background=True)
    async def stubborn(self):
        self.status = "stubborn"
        yield None
        await asyncio.sleep(30)


async def test_a_background_event_can_be_cancelled_by_any_viewer(sm):
    app = StarModel(entities=[Importer], secret_key="test")
    async with (
        live_server(app) as url,
        socket_client(url) as starter,
        socket_client(url) as other,
        open_stream(other, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        await live.next()  # resync
        assert (await post_event(starter, "/bg_import/start", rows=100)).status_code in (200, 204)
        events = await collect_until(live, lambda e: e.type == "datastar-patch-signals"
                                     and e.signals.get("bg_import", {}).get("done", 0) >= 2)
        assert Importer.start.cancel() == "@post('/bg_import/start/cancel')"
        answer = await post_event(other, "/bg_import/start/cancel")
        assert answer.status_code == 200 and "Stopping start" in answer.text
        events += await collect_until(live, lambda e: e.type == "datastar-patch-signals"
                                      and e.signals.get("bg_import", {}).get("status") == "cancelled")
        stopped_at = max(e.signals["bg_import"].get("done", 0) for e in events
                         if e.type == "datastar-patch-signals")
        assert 2 <= stopped_at < 100
        async with asyncio.timeout(5):
            while app.dispatcher.running(Importer, "global", "start"):
                await asyncio.sleep(0.02)
        assert await live.nothing_within(0.3)  # nothing more: it stopped


async def test_a_cancelled_event_that_does_not_catch_it_is_rolled_back_and_reported(sm):
    app = StarModel(entities=[Importer], secret_key="test")
    async with (
        live_server(app) as url,
        socket_client(url) as browser,
        open_stream(browser, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        await live.next()
        await post_event(browser, "/bg_import/stubborn")
        await collect_until(live, lambda e: e.type == "datastar-patch-signals"
                            and e.signals.get("bg_import", {}).get("status") == "stubborn")
        assert (await post_event(browser, "/bg_import/stubborn/cancel")).status_code == 200
        toast = await collect_until(live, lambda e: e.type == "datastar-patch-elements"
                                    and "stubborn was cancelled" in e.elements)
        assert toast


class Plain(Entity):
    model_config = {"scope": "global", "namespace": "bg_plain"}
    ticks: int = 0

    @event
    def tick(self):
        self.ticks += 1


async def test_only_background_events_can_be_cancelled():
    with pytest.raises(TypeError, match="not a background event"):
        Plain.tick.cancel()
    app = StarModel(entities=[Importer, Plain], secret_key="test")
    async with live_server(app) as url, socket_client(url) as browser:
        assert (await post_event(browser, "/bg_plain/tick/cancel")).status_code == 404
        assert (await post_event(browser, "/bg_import/start/cancel")).status_code == 200  # idle: no-op
        refused = await browser.post("/bg_import/start/cancel", json={})
        assert refused.status_code == 403  # no Datastar header: refused like any event


class Chart(Entity):
    model_config = {"scope": "global", "namespace": "bg_chart"}
    points: list[int] = []

    @event
    def add_point(self, value: int = 1):
        self.points = [*self.points[-9:], value]


async def test_a_periodic_job_feeds_every_tab():
    app = StarModel(entities=[Chart], secret_key="test")
    app.every(0.1, Chart.add_point, value=7)
    samples: list[int] = []

    @app.every(0.1)
    def sample() -> None:  # a plain function works too
        samples.append(1)

    async with (
        live_server(app) as url,
        socket_client(url) as browser,
        open_stream(browser, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        await live.next()
        events = await collect_until(live, lambda e: e.type == "datastar-patch-signals"
                                     and len(e.signals.get("bg_chart", {}).get("points", [])) >= 3)
        assert events[-1].signals["bg_chart"]["points"][-3:] == [7, 7, 7]
    assert len(samples) >= 2
    assert app.jobs.jobs["Chart.add_point"].runs >= 3
    with pytest.raises(TypeError, match="pass an event"):
        app.every(1, "Chart.add_point")  # type: ignore[arg-type]

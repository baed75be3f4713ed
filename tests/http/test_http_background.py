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
            live, lambda e: e.event == "datastar-patch-signals"
            and e.signals.get("bg_job", {}).get("status") == "finished"
        )
        dones = [e.signals["bg_job"]["done"] for e in events
                 if e.event == "datastar-patch-signals" and "done" in e.signals["bg_job"]]
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
            events = await collect_until(live, lambda e: e.event == "datastar-patch-elements")
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

"""The per-tab live stream (``GET /_starmodel/live``) over a real socket (uvicorn in-process)."""

import asyncio

import pytest
from sm_http import (
    DATASTAR,
    SSEEvent,
    live_server,
    open_stream,
    parse_sse,
    post_event,
    socket_client,
    state_signals,
)

from starmodel import Entity, StarModel, event

LIVE = "/_starmodel/live"
DEFAULTS = {"live_shared": {"count": 0}, "live_mine": {"count": 0}}


class Shared(Entity):
    model_config = {"scope": "global", "namespace": "live_shared"}
    count: int = 0

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    async def progress(self, steps: int = 3):
        for step in range(1, steps + 1):
            self.count = step
            yield None
            await asyncio.sleep(0.05)


class Mine(Entity):
    model_config = {"namespace": "live_mine"}
    count: int = 0

    @event
    def increment(self, amount: int = 1):
        self.count += amount


@pytest.fixture
def sm():
    return StarModel(entities=[Shared, Mine], secret_key="test")


@pytest.fixture
async def server(sm):
    async with live_server(sm) as url:
        yield url


def tab(tab_id: str) -> dict[str, str]:
    return {**DATASTAR, "X-StarModel-Tab": tab_id}


def signals_of(item: SSEEvent) -> dict:
    assert item.type == "datastar-patch-signals", item
    return state_signals([item])


async def wait_for_streams(sm, count: int) -> None:
    async with asyncio.timeout(3):
        while sm.hub.open_count() < count:
            await asyncio.sleep(0.01)


async def wait_for_streams_closed(sm) -> None:
    async with asyncio.timeout(3):
        while sm.hub.open_count():
            await asyncio.sleep(0.01)


async def test_live_stream_needs_the_datastar_header(server):
    async with socket_client(server) as client:
        response = await client.get(LIVE)
        assert response.status_code == 400


async def test_global_change_by_another_session_is_pushed_with_an_id(sm, server):
    async with (
        socket_client(server) as viewer,
        socket_client(server) as other,
        open_stream(viewer, "GET", LIVE, headers=tab("viewer-1")) as live,
    ):
        assert live.response.status_code == 200
        assert live.response.headers["content-type"].startswith("text/event-stream")
        await wait_for_streams(sm, 1)
        assert signals_of(await live.next()) == DEFAULTS  # the resync: state as it is now
        response = await post_event(other, "/live_shared/increment", amount=3)
        assert response.status_code == 200
        pushed = await live.next()
        assert signals_of(pushed) == {"live_shared": {"count": 3}}
        assert pushed.id


async def test_session_change_reaches_other_tabs_of_that_session_only(sm, server):
    async with socket_client(server) as browser, socket_client(server) as stranger:
        await post_event(browser, "/live_mine/increment", amount=0)  # gets the session cookie
        async with (
            open_stream(browser, "GET", LIVE, headers=tab("tab-a")) as tab_a,
            open_stream(stranger, "GET", LIVE, headers=tab("tab-s")) as stranger_live,
        ):
            await wait_for_streams(sm, 2)
            await tab_a.next()  # the resync of tab-a (its session already has state)
            await stranger_live.next()  # and of the stranger
            await post_event(browser, "/live_mine/increment", amount=2, headers=tab("tab-b"))
            pushed = await tab_a.next()
            assert signals_of(pushed) == {"live_mine": {"count": 2}}
            assert pushed.id
            await post_event(stranger, "/live_mine/increment", amount=50, headers=tab("tab-s"))
            assert await tab_a.nothing_within(0.3)
            assert await stranger_live.nothing_within(0.1)


async def test_change_is_not_echoed_to_the_tab_that_made_it(sm, server):
    async with socket_client(server) as browser:
        await post_event(browser, "/live_mine/increment", amount=0)
        async with open_stream(browser, "GET", LIVE, headers=tab("tab-a")) as live:
            await wait_for_streams(sm, 1)
            await live.next()  # resync
            response = await post_event(browser, "/live_mine/increment", headers=tab("tab-a"))
            assert state_signals(parse_sse(response.text)) == {"live_mine": {"count": 1}}
            assert await live.nothing_within(0.3)
            await post_event(browser, "/live_shared/increment", headers=tab("tab-a"))
            assert await live.nothing_within(0.3)
            await post_event(browser, "/live_mine/increment", headers=tab("tab-b"))
            assert signals_of(await live.next()) == {"live_mine": {"count": 2}}


async def test_streaming_event_progress_reaches_other_viewers(sm, server):
    async with (
        socket_client(server) as viewer,
        socket_client(server) as worker,
        open_stream(viewer, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        await wait_for_streams(sm, 1)
        await live.next()  # resync
        response = await post_event(worker, "/live_shared/progress", steps=3)
        assert response.status_code == 200
        seen = [signals_of(await live.next()) for _ in range(3)]
        assert seen == [{"live_shared": {"count": step}} for step in (1, 2, 3)]


async def test_reconnect_with_last_event_id_replays_what_was_missed(sm, server):
    async with socket_client(server) as viewer, socket_client(server) as other:
        async with open_stream(viewer, "GET", LIVE, headers=tab("viewer")) as live:
            await wait_for_streams(sm, 1)
            await live.next()  # resync
            await post_event(other, "/live_shared/increment")
            last_seen = (await live.next()).id
        await wait_for_streams_closed(sm)
        await post_event(other, "/live_shared/increment", amount=10)
        await post_event(other, "/live_mine/increment", amount=99)  # other session: not replayed
        await post_event(other, "/live_shared/increment", amount=100)
        headers = {**tab("viewer"), "Last-Event-ID": last_seen}
        async with open_stream(viewer, "GET", LIVE, headers=headers) as live:
            first = await live.next()
            second = await live.next()
            assert signals_of(first) == {"live_shared": {"count": 11}}
            assert signals_of(second) == {"live_shared": {"count": 111}}
            assert first.id and second.id and first.id != second.id
            assert await live.nothing_within(0.2)


@pytest.mark.parametrize("last_id", ["00000000-3", "garbage", "not-a-number", "", "deadbeef-" + "9" * 5_000])
async def test_unknown_last_event_id_gets_a_full_resync(sm, server, last_id):
    async with socket_client(server) as viewer, socket_client(server) as other:
        await post_event(viewer, "/live_mine/increment", amount=4)
        await post_event(other, "/live_shared/increment", amount=7)
        await post_event(other, "/live_mine/increment", amount=1000)
        headers = {**tab("viewer"), "Last-Event-ID": last_id}
        async with open_stream(viewer, "GET", LIVE, headers=headers) as live:
            resync = await live.next()
            assert signals_of(resync) == {
                "live_shared": {"count": 7},
                "live_mine": {"count": 4},
            }
            assert resync.id


async def test_event_id_from_the_future_gets_a_full_resync(sm, server):
    async with socket_client(server) as viewer:
        await post_event(viewer, "/live_mine/increment", amount=4)
        future = f"{sm.hub.epoch}-{sm.hub.seq + 1000}"
        headers = {**tab("viewer"), "Last-Event-ID": future}
        async with open_stream(viewer, "GET", LIVE, headers=headers) as live:
            assert signals_of(await live.next()) == {
                "live_shared": {"count": 0},
                "live_mine": {"count": 4},
            }


async def test_first_connection_gets_the_state_even_if_nothing_is_stored(sm, server):
    """A tab that reconnects after a restart must drop its stale values: the resync carries
    every entity, with defaults for those the store does not have."""
    async with (
        socket_client(server) as viewer,
        socket_client(server) as other,
        open_stream(viewer, "GET", LIVE, headers=tab("viewer")) as live,
    ):
        assert signals_of(await live.next()) == DEFAULTS
        assert await live.nothing_within(0.2)
        await post_event(other, "/live_shared/increment")
        assert signals_of(await live.next()) == {"live_shared": {"count": 1}}


async def test_closing_the_tab_forgets_its_stream(sm, server):
    async with socket_client(server) as viewer:
        async with open_stream(viewer, "GET", LIVE, headers=tab("viewer")):
            await wait_for_streams(sm, 1)
        await wait_for_streams_closed(sm)
        assert sm.hub.streams == {}


async def test_server_shutdown_ends_live_streams(sm):
    async with live_server(sm) as url, socket_client(url) as viewer:
        async with open_stream(viewer, "GET", LIVE, headers=tab("viewer")) as live:
            await wait_for_streams(sm, 1)
            await live.next()  # resync
            sm.hub.close_all()
            with pytest.raises(EOFError):
                await live.next(timeout=3)
        response = await viewer.get(LIVE, headers=DATASTAR)
        assert response.status_code == 503

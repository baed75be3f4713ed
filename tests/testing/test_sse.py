"""The kit's SSE reading: ``parse_sse`` over whole bodies, ``SSEReader`` over a live stream
read in process through the kit's ASGI transport."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from starmodel import Entity, event
from starmodel.adapters.driving.web.fasthtml import LIVE_PATH
from starmodel.testing import AsgiTransport, EventClient, SSEEvent, SSEReader, parse_sse
from starmodel.testing.sse import COMMENT


class Beacon(Entity):
    """One for everybody: what one tab changes, every other tab is sent."""

    model_config = {"scope": "global"}
    lit: int = 0

    @event
    def light(self):
        self.lit += 1


def test_a_body_is_read_into_its_events() -> None:
    body = (
        "event: datastar-patch-signals\r\nid: 7\r\ndata: signals {\"a\": {\"b\": 1}}\r\n\r\n"
        ": ping\n\n"
        "event: datastar-patch-elements\ndata: selector #x\ndata: elements <p>one</p>\n"
        "data: elements <p>two</p>\n\n"
        "data:no-space\n\n"
    )
    signals, elements, plain = parse_sse(body)
    assert signals == SSEEvent("datastar-patch-signals", ('signals {"a": {"b": 1}}',), "7")
    assert signals.signals == {"a": {"b": 1}}
    assert elements.values("elements") == ["<p>one</p>", "<p>two</p>"]
    assert elements.elements == "<p>one</p>\n<p>two</p>"
    assert elements.value("selector") == "#x" and elements.value("mode") is None
    assert plain == SSEEvent("message", ("no-space",))


def test_a_block_of_comments_only_is_no_event() -> None:
    assert SSEEvent.parse(": ping\n: again") is None
    assert parse_sse(": ping\n\n\n\n") == []
    assert SSEEvent.parse("event: x") == SSEEvent("x")


def test_reading_signals_or_html_from_the_wrong_event_fails() -> None:
    [elements] = parse_sse("event: datastar-patch-elements\ndata: elements <p/>\n\n")
    with pytest.raises(ValueError, match="not a datastar-patch-signals one"):
        _ = elements.signals
    [signals] = parse_sse("event: datastar-patch-signals\ndata: signals [1]\n\n")
    with pytest.raises(ValueError, match="not a datastar-patch-elements one"):
        _ = signals.elements
    with pytest.raises(ValueError, match="no signals object"):
        _ = signals.signals


def ticking_app(ticks: int, pause: float) -> Starlette:
    """Sends ``ticks`` events, ``pause`` s apart, each after a keep-alive comment."""

    async def ticks_route(request: Request) -> StreamingResponse:
        async def body():
            for n in range(ticks):
                yield f": ping\n\nevent: tick\nid: {n}\ndata: n {n}\n\n"
                await asyncio.sleep(pause)

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/ticks", ticks_route)])


async def test_the_reader_gives_events_as_they_arrive_with_bounded_waits() -> None:
    app = ticking_app(ticks=3, pause=0.3)
    async with (
        httpx.AsyncClient(transport=AsgiTransport(app), base_url="http://testserver") as http,
        http.stream("GET", "/ticks") as response,
    ):
        reader = SSEReader(response)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = await reader.next(timeout=1)
        assert first == SSEEvent("tick", ("n 0",), "0")
        assert loop.time() - started < 0.25  # not held back until the body ends
        with pytest.raises(TimeoutError):
            await reader.next(timeout=0.05)
        assert await reader.next(timeout=1, comments=True) == SSEEvent(COMMENT, ("ping",))
        assert (await reader.next(timeout=1)).id == "1"
        assert not await reader.nothing_within(1)  # tick 2 comes
        with pytest.raises(EOFError):
            await reader.next(timeout=1)
        assert reader.ended and reader.comments == 3
        await reader.close()


async def test_an_apps_live_stream_is_read_in_process(starmodel_app) -> None:
    sm = starmodel_app(Beacon)
    async with EventClient(sm) as client:
        headers = {"Datastar-Request": "true", "X-StarModel-Tab": "reader-tab"}
        async with client.http.stream("GET", LIVE_PATH, headers=headers) as response:
            assert response.status_code == 200
            reader = SSEReader(response)
            opening = await reader.next(timeout=5)
            assert opening.signals == {"beacon": {"lit": 0}}
            await client.session().call(Beacon.light)
            change = await reader.next(timeout=5)
            assert change.signals == {"beacon": {"lit": 1}}
            await reader.close()

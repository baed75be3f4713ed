"""The kit's ASGI driver: ``call_asgi`` straight into an app, ``AsgiTransport`` under httpx
(streamed bodies, the client going away, the app's errors) and ``AsgiLifespan``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from starmodel import Entity, event
from starmodel.testing import AsgiLifespan, AsgiTransport, call_asgi, http_scope, parse_sse

BASE_URL = "http://testserver"


class Lamp(Entity):
    on: bool = False

    @event
    def switch(self):
        self.on = not self.on


async def fail(request: Request) -> Response:
    raise LookupError("nothing here")


def small_app(seen: dict[str, Any]) -> Starlette:
    """Routes that echo, stream, notice a client leaving and fail; a lifespan that records
    its startup and shutdown and leaves state for the requests."""

    async def echo(request: Request) -> Response:
        body = await request.body()
        return PlainTextResponse(f"{request.method} {request.url.path}?{request.url.query} "
                                 f"{body.decode()} {request.state.greeting}")

    async def parts(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for n in range(3):
                yield f"part {n};"
                await asyncio.sleep(0.2)

        return StreamingResponse(body())

    async def endless(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            try:
                while True:
                    yield "."
                    await asyncio.sleep(0.01)
            finally:
                seen["left"] = True

        return StreamingResponse(body())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        seen["started"] = True
        yield {"greeting": "hello"}
        seen["stopped"] = True

    routes = [Route("/echo", echo, methods=["GET", "POST"]), Route("/parts", parts),
              Route("/endless", endless), Route("/fail", fail)]
    return Starlette(routes=routes, lifespan=lifespan)


async def test_the_lifespan_runs_and_its_state_reaches_the_requests() -> None:
    seen: dict[str, Any] = {}
    app = small_app(seen)
    async with AsgiLifespan(app) as lifespan:
        assert seen == {"started": True}
        transport = AsgiTransport(app, state=lifespan.state)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            answer = await http.post("/echo?a=1", content=b"body")
        assert answer.status_code == 200
        assert answer.text == "POST /echo?a=1 body hello"
    assert seen == {"started": True, "stopped": True}


async def test_a_failing_startup_is_reported() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise OSError("no database")
        yield

    with pytest.raises(OSError, match="no database"):  # the app's own error
        await AsgiLifespan(Starlette(lifespan=lifespan)).start()


async def test_a_body_streams_and_keeps_its_parts() -> None:
    app = small_app({})
    async with (
        httpx.AsyncClient(transport=AsgiTransport(app), base_url=BASE_URL) as http,
        http.stream("GET", "/parts") as response,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"part 0;"
        assert loop.time() - started < 0.15  # before the app has finished
        assert [chunk async for chunk in chunks] == [b"part 1;", b"part 2;"]
        assert response.extensions["parts"] == [b"part 0;", b"part 1;", b"part 2;"]


async def test_closing_a_body_early_is_the_client_going_away() -> None:
    seen: dict[str, Any] = {}
    app = small_app(seen)
    async with httpx.AsyncClient(transport=AsgiTransport(app), base_url=BASE_URL) as http:
        async with http.stream("GET", "/endless") as response:
            assert await anext(response.aiter_bytes()) == b"."
        assert seen == {"left": True}


async def test_the_apps_exception_reaches_the_caller_unless_told_otherwise() -> None:
    app = Starlette(routes=[Route("/fail", fail)])
    async with httpx.AsyncClient(transport=AsgiTransport(app), base_url=BASE_URL) as http:
        with pytest.raises(LookupError, match="nothing here"):
            await http.get("/fail")
    quiet = AsgiTransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=quiet, base_url=BASE_URL) as http:
        assert (await http.get("/fail")).status_code == 500


async def test_call_asgi_runs_one_event_straight_through_the_app(starmodel_app) -> None:
    sm = starmodel_app(Lamp)
    scope = http_scope("POST", "/lamp/switch", headers=[(b"datastar-request", b"true"),
                                                        (b"content-type", b"application/json")])
    answer = await call_asgi(sm.app, scope, b"{}")
    assert answer.status == 200
    assert (answer.header("Content-Type") or "").startswith("text/event-stream")
    assert answer.header("set-cookie") is not None
    [patch] = parse_sse(answer.body.decode())
    assert patch.signals == {"lamp": {"on": True}}


async def test_call_asgi_refuses_an_app_that_answers_nothing() -> None:
    async def mute(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    with pytest.raises(RuntimeError, match="sent no response"):
        await call_asgi(mute, http_scope("GET", "/"))

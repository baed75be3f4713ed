"""Live streams over a real socket: what an open stream holds on the server, and tabs that do
not read (uvicorn in-process, raw sockets for the slow tabs)."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from sm_http import DATASTAR, live_server, open_stream, socket_client
from starlette.middleware.base import BaseHTTPMiddleware

from starmodel import Entity, StarModel, event
from starmodel.adapters.driving.live.http import HttpLiveStream, LiveDetach
from starmodel.testing import SSEReader

LIVE = "/_starmodel/live"
BIG = 256 * 1024  # one change's text: a few dozen fill every buffer between server and tab


class Board(Entity):
    model_config = {"scope": "global", "namespace": "fan_board"}
    count: int = 0
    text: str = ""

    @event
    def increment(self):
        self.count += 1

    @event
    def write(self, size: int = BIG):
        self.count += 1
        self.text = f"{self.count}:" + "x" * size


def tab(tab_id: str) -> dict[str, str]:
    return {**DATASTAR, "X-StarModel-Tab": tab_id}


def http_stream(sm: StarModel, tab_id: str) -> HttpLiveStream:
    found = [s for s in sm.hub.streams.get("global", ()) if s.tab_id == tab_id]
    assert len(found) == 1, f"no live stream of tab {tab_id} on the server"
    assert isinstance(found[0], HttpLiveStream)
    return found[0]


async def wait_until(check, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def change(sm: StarModel, name: str = "increment", **args) -> None:
    """A change made by server code (what a click would do): published to every tab, and
    written before the next one is made (as when each comes with a request of its own)."""
    await sm.call(Board, name, **args)
    await asyncio.sleep(0)


class RawTab:
    """A tab that opens its live stream on a plain socket with a tiny receive buffer, and
    reads only when told to."""

    def __init__(self, url: str, tab_id: str) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        self.tab_id = tab_id
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=2**22)
        headers = "".join(f"{k}: {v}\r\n" for k, v in tab(self.tab_id).items())
        self.writer.write(f"GET {LIVE} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())

    async def read_counts(self, until: int, timeout: float = 30.0) -> list[int]:
        """Read the stream until the change with ``count == until`` (counts in arrival order)."""
        assert self.reader is not None
        counts: list[int] = []
        seen = b""
        async with asyncio.timeout(timeout):
            while not counts or counts[-1] < until:
                seen += await self.reader.read(2**20)
                *blocks, seen = seen.split(b"\n\n")
                for block in blocks:
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: signals "):
                            signals = json.loads(line[len(b"data: signals ") :])
                            if "count" in signals.get("fan_board", {}):
                                counts.append(signals["fan_board"]["count"])
        return counts

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def test_a_tab_that_stops_reading_gets_every_change_once_it_reads_again():
    sm = StarModel(entities=[Board], secret_key="test")
    async with live_server(sm) as url:
        slow = RawTab(url, "slow")
        await slow.open()
        await wait_until(lambda: sm.hub.open_count() == 1)
        stream = http_stream(sm, "slow")
        for _ in range(40):  # ~10 MB: more than the socket buffers hold
            await change(sm, "write")
        await wait_until(lambda: stream.busy)  # its connection is full: one write waits
        assert stream.closed is None and len(stream.pending) <= sm.settings.live_queue_size
        counts = await slow.read_counts(until=40)
        assert counts == list(range(41))  # the state first, then nothing lost, nothing twice, in order
        await wait_until(lambda: not stream.busy)
        slow.close()
        await wait_until(lambda: sm.hub.open_count() == 0)


async def test_a_tab_that_never_reads_is_dropped_with_bounded_memory_and_holds_up_no_one():
    sm = StarModel(entities=[Board], secret_key="test", live_queue_size=4)
    async with live_server(sm) as url, socket_client(url) as browser:
        stuck = RawTab(url, "stuck")
        await stuck.open()
        async with open_stream(browser, "GET", LIVE, headers=tab("reader")) as reader:
            await reader.next()  # its first message: the current state
            await wait_until(lambda: sm.hub.open_count() == 2)
            stream = http_stream(sm, "stuck")
            most = 0
            for count in range(1, 41):
                await change(sm, "write")
                most = max(most, len(stream._pending or ()))
                seen = await reader.next(timeout=5)  # the reading tab is not held up
                assert seen.signals["fan_board"]["count"] == count
            assert stream.closed == "slow consumer"
            assert most <= 4 and not stream._pending  # its backlog stayed bounded, then was let go
            await change(sm)  # a dropped stream is sent nothing more
            await reader.next(timeout=5)
            assert not stream._pending
        stuck.close()
        await wait_until(lambda: sm.hub.open_count() == 0)


async def test_an_open_stream_costs_the_server_its_connection_task_only():
    """No task, queue or generator per stream: only the server's own task for the connection
    (Starlette's streaming response would add a task and a task group per stream), and one
    heartbeat task for all of them."""

    def server_tasks() -> int:  # the client's readers run in this loop too
        return sum(task.get_coro().__qualname__ != "SSEReader._pump" for task in asyncio.all_tasks())

    sm = StarModel(entities=[Board], secret_key="test")
    async with live_server(sm) as url, socket_client(url) as browser:
        await browser.get("/_starmodel/health", headers=DATASTAR)  # the server's first tasks
        before = server_tasks()
        async with open_streams(browser, 10) as readers:
            await wait_until(lambda: sm.hub.open_count() == 10)
            assert server_tasks() - before == 10 + 1
            await change(sm)
            for reader in readers:
                assert (await reader.next(timeout=5)).signals == {"fan_board": {"count": 1}}


@contextlib.asynccontextmanager
async def open_streams(browser: httpx.AsyncClient, count: int) -> AsyncIterator[list[SSEReader]]:
    """``count`` tabs with their live stream open, each past its first message."""
    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for n in range(count):
            reader = await stack.enter_async_context(open_stream(browser, "GET", LIVE, headers=tab(f"t{n}")))
            await reader.next()
            readers.append(reader)
        yield readers


async def test_the_stream_opens_through_every_middleware_then_is_held_outside_them():
    sm = StarModel(entities=[Board], secret_key="test")
    async with (
        live_server(sm) as url,
        socket_client(url) as browser,
        browser.stream("GET", LIVE, headers=tab("t1")) as response,
    ):
        # what the middleware add to the answer's start is there: a new session's cookie,
        # the security headers, the request id
        assert response.status_code == 200
        assert "starmodel_session=" in response.headers["set-cookie"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-request-id"]
        await wait_until(lambda: sm.hub.open_count() == 1)
        stack = sm.app.middleware_stack
        assert isinstance(stack, LiveDetach) and stack.detaches
        # the stream writes with the server's own send, past the middleware's
        assert type(http_stream(sm, "t1").send.__self__).__name__ == "RequestResponseCycle"


async def test_with_a_middleware_that_may_rewrite_bodies_the_stream_stays_inside_it():
    sm = StarModel(entities=[Board], secret_key="test")
    seen: list[str] = []

    async def note(request, call_next):
        seen.append(request.url.path)
        return await call_next(request)

    sm.app.add_middleware(BaseHTTPMiddleware, dispatch=note)
    async with live_server(sm) as url, socket_client(url) as browser:
        async with open_stream(browser, "GET", LIVE, headers=tab("t1")) as live:
            await live.next()
            stack = sm.app.middleware_stack
            assert isinstance(stack, LiveDetach) and not stack.detaches
            await change(sm)
            assert (await live.next(timeout=5)).signals == {"fan_board": {"count": 1}}
            sm.hub.close_all()
            with pytest.raises(EOFError):
                await live.next(timeout=3)
        assert seen == [LIVE]
        await wait_until(lambda: sm.hub.open_count() == 0)


async def test_an_idle_stream_gets_heartbeats_over_the_socket():
    sm = StarModel(entities=[Board], secret_key="test", live_heartbeat=0.05)
    async with (
        live_server(sm) as url,
        socket_client(url) as browser,
        open_stream(browser, "GET", LIVE, headers=tab("t1")) as live,
    ):
        await live.next()
        ping = await live.next(timeout=3, comments=True)
        assert ping.type == "comment" and "ping" in "".join(ping.data)
        await change(sm)
        assert (await live.next(timeout=3)).signals == {"fan_board": {"count": 1}}

"""The real Redis stopped and started again under two running server processes.

``redis_outage`` (conftest.py) stops the machine's Redis and always starts it again, waiting
for PONG, whatever the test does. Redis keeps nothing on disk: after the restart its data,
including the bus numbering, is gone.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from redis_process_support import (
    MakeServer,
    RedisOutage,
    ServerProcess,
    SSEEvent,
    answer_signals,
    browser,
    change_of,
    live,
    post,
    start_together,
    wait_for,
)


async def test_redis_down_then_back_under_two_running_processes(
    app_servers: MakeServer, redis_outage: RedisOutage
) -> None:
    """While Redis is down: events of Redis entities answer a clear 503 (an error toast saying
    Redis cannot be reached) and change nothing; memory and SQL events are answered and reach
    the live streams of their own process; tabs can still open a live stream. Once Redis is
    back (the processes are not restarted), Redis events work again within seconds, changes
    cross processes again, and a tab holding an id from before gets a full resync. No process
    logs a traceback."""
    a, b = app_servers("a"), app_servers("b")
    await start_together(a, b)
    async with browser() as tab:
        async with live(tab, a, watch="note") as on_a:
            await on_a.next()
            assert (await post(tab, a, "/hits/increment")).status_code == 200
            before = await change_of(on_a, "hits")
            assert before.signals == {"hits": {"count": 1}} and before.id is not None

            await asyncio.to_thread(redis_outage.stop)

            for server, path in ((a, "/hits/increment"), (b, "/hits/increment"), (a, "/visits/increment")):
                started = time.monotonic()
                down = await post(tab, server, path)
                took = time.monotonic() - started
                assert down.status_code == 503, (server.name, path, down.status_code, down.text)
                message = down.headers.get("x-starmodel-error", "")
                assert "Redis at 127.0.0.1:6379 cannot be reached" in message, message
                assert "starmodel-toasts" in down.text and "Redis at 127.0.0.1:6379" in down.text
                assert "datastar-patch-signals" not in down.text  # nothing changed
                assert took < 3.0, f"{path} on {server.name} took {took:.1f}s to answer 503"

            clicked = await post(tab, a, "/clicks/increment")  # memory
            assert answer_signals(clicked, "clicks") == {"count": 1}
            assert (await on_a.next()).signals == {"clicks": {"count": 1}}
            created = await post(tab, a, "/note/create", text="written during the outage")
            assert created.status_code == 200, created.text
            (key,) = (k for k in answer_signals(created, "note") if k != "_errors")
            row = {"id": int(key), "text": "written during the outage", "stars": 0}
            assert (await on_a.next()).signals == {"note": {key: row}}

            async with live(tab, a) as opened_during:  # a tab opening now gets what can be had
                initial = await opened_during.next()
                assert initial.signals["clicks"] == {"count": 1} and "hits" not in initial.signals

            await asyncio.to_thread(redis_outage.start)

        async def redis_events_work(server: ServerProcess = a) -> httpx.Response | None:
            answer = await post(tab, server, "/hits/increment")
            return answer if answer.status_code == 200 else None

        back = await wait_for(redis_events_work, "Redis events on A work again", timeout=15)
        assert answer_signals(back, "hits") == {"count": 1}  # Redis lost its data; no 503 wrote
        back_b = await wait_for(lambda: redis_events_work(b), "Redis events on B work again", timeout=15)
        assert answer_signals(back_b, "hits") == {"count": 2}

        async def crosses_processes() -> SSEEvent:
            async with live(tab, b) as on_b:
                await on_b.next()
                assert (await post(tab, a, "/hits/increment", amount=10)).status_code == 200
                return await change_of(on_b, "hits", timeout=2)

        crossed = await wait_for(crosses_processes, "a change on A reaches a live stream on B", timeout=20)
        assert crossed.signals["hits"]["count"] >= 12

        async with live(tab, b, last_event_id=before.id) as stale:  # an id of the lost numbering
            full = await stale.next()
            assert full.signals["hits"] == crossed.signals["hits"]
            assert {"clicks", "visits", "burst"} <= set(full.signals)
    for server in (a, b):
        server.assert_no_traceback()
    log_a = a.log()
    assert "Redis bus at 127.0.0.1:6379 unreachable" in log_a, log_a
    assert "Redis bus at 127.0.0.1:6379 is back" in log_a, log_a

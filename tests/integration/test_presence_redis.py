"""Presence across processes, with the real Redis: one contract for every tracker (memory and
Redis, on a clock moved by hand), and two apps sharing one Redis (as two server processes
would, each with its own live streams): a join on one is pushed to the tabs of the other, and
the viewers of an app that stops beating (its process died) drop out within ttl + beat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from starmodel import Entity, StarModel, Viewer
from starmodel.adapters.driven.presence import MemoryPresenceTracker
from starmodel.adapters.driven.presence.redis import RedisPresenceTracker
from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.core.presence import PresenceTracker

TTL, BEAT = 1.0, 0.25


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


class Page(Entity):
    model_config = {"scope": "global", "presence": True, "namespace": "pr_page"}
    text: str = ""


@pytest.fixture(params=["memory", "redis"])
async def tracker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PresenceTracker, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield MemoryPresenceTracker(clock), clock
        return
    prefix = request.getfixturevalue("redis_prefix")
    connection = RedisConnection(request.getfixturevalue("redis_url"), prefix=prefix)
    yield RedisPresenceTracker(connection, clock), clock
    await connection.close()


def ada(since: float = 1.0) -> Viewer:
    return Viewer("u-ada", "Ada", since=since)


def bob(since: float = 2.0) -> Viewer:
    return Viewer("u-bob", "Bob", "/static/bob.png", since=since)


async def test_viewers_are_listed_in_joining_order_until_they_leave(tracker: Any) -> None:
    presence, _ = tracker
    await presence.join("page:1", "c2", bob(), ttl=15)
    await presence.join("page:1", "c1", ada(), ttl=15)
    await presence.join("page:2", "c3", bob(), ttl=15)
    assert await presence.viewers("page:1") == [ada(), bob()]
    await presence.leave("page:1", "c1")
    await presence.leave("page:1", "never-joined")
    assert await presence.viewers("page:1") == [bob()]
    assert await presence.viewers("page:2") == [bob()]
    assert await presence.viewers("page:none") == []


async def test_a_connection_that_is_not_renewed_expires(tracker: Any) -> None:
    presence, clock = tracker
    await presence.join("page:1", "c1", ada(), ttl=15)
    await presence.join("page:1", "c2", bob(), ttl=15)
    clock.now += 10
    await presence.update({"page:1": {"c2": bob()}}, {}, ttl=15)
    clock.now += 6
    assert await presence.viewers("page:1") == [bob()]
    clock.now += 15
    assert await presence.viewers("page:1") == []


async def test_a_beat_writes_a_connection_again_after_it_was_lost(tracker: Any) -> None:
    presence, clock = tracker
    await presence.join("page:1", "c1", ada(), ttl=1)
    clock.now += 5
    assert await presence.viewers("page:1") == []
    await presence.update({"page:1": {"c1": ada()}}, {}, ttl=1)
    assert await presence.viewers("page:1") == [ada()]


async def test_redis_keeps_nothing_for_an_instance_nobody_looks_at(redis_url: str, redis_prefix: str) -> None:
    connection = RedisConnection(redis_url, prefix=redis_prefix)
    presence = RedisPresenceTracker(connection)
    try:
        await presence.join("page:1", "c1", ada(), ttl=0.2)
        keys = sorted(await connection.client.keys(f"{redis_prefix}:_presence:*"))
        assert keys == [f"{redis_prefix}:_presence:page:1", f"{redis_prefix}:_presence:page:1:who"]
        await asyncio.sleep(0.6)  # the keys outlive the last beat by a ttl
        assert await connection.client.keys(f"{redis_prefix}:_presence:*") == []
    finally:
        await connection.close()


# --- two apps on one Redis ---------------------------------------------------------------------


@pytest.fixture
async def two_apps(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[StarModel, StarModel]]:
    apps = [
        StarModel(
            entities=[Page], secret_key="presence", redis_url=redis_url, redis_prefix=redis_prefix,
            migrations_dir=str(tmp_path / "none"), presence_ttl=TTL, presence_beat=BEAT,
        )
        for _ in range(2)
    ]
    for number, sm in enumerate(apps, start=1):
        sm.presence.describe(lambda ctx, n=number: Viewer(f"v-{ctx.session_id}", f"{ctx.session_id}@{n}"))
    async with AsyncExitStack() as stack:
        for sm in apps:
            await stack.enter_async_context(sm.app.router.lifespan_context(sm.app))
        yield apps[0], apps[1]


async def until(condition: Callable[[], Any], timeout: float) -> float:
    """Seconds until ``await condition()`` is true; fails past ``timeout``."""
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s") from None
    return asyncio.get_running_loop().time() - started


def last_count(stream: Any) -> int | None:
    """The count of viewers in the last presence push a stream got."""
    found = [m for m in (raw.decode() for raw in stream.pending) if "presence-pr_page-global" in m]
    if not found:
        return None
    return int(found[-1].split('data-count="', 1)[1].split('"', 1)[0])


async def test_a_join_on_one_app_is_pushed_to_the_tabs_of_the_other(two_apps: Any) -> None:
    a, b = two_apps
    on_a, body_a = a.open_live_stream("alice", "tab-a", here=[(Page, "global")])
    await body_a.__anext__()
    await until(lambda: _is(last_count(on_a) == 1), 5)
    on_b, body_b = b.open_live_stream("bruno", "tab-b", here=[(Page, "global")])
    await body_b.__anext__()
    await until(lambda: _is(last_count(on_a) == 2 and last_count(on_b) == 2), 5)
    assert [v.name for v in await a.presence.of(Page)] == ["alice@1", "bruno@2"]
    assert [v.name for v in await b.presence.of(Page)] == ["alice@1", "bruno@2"]

    await body_b.aclose()  # the tab on b closes: a's tab sees it go at once
    await until(lambda: _is(last_count(on_a) == 1), 2)
    await body_a.aclose()


async def test_the_viewers_of_an_app_that_stops_beating_drop_out_within_ttl_and_a_beat(two_apps: Any) -> None:
    a, b = two_apps
    on_a, body_a = a.open_live_stream("alice", "tab-a", here=[(Page, "global")])
    await body_a.__anext__()
    _, body_b = b.open_live_stream("bruno", "tab-b", here=[(Page, "global")])
    await body_b.__anext__()
    await until(lambda: _is(last_count(on_a) == 2), 5)

    beats = b.presence._beats  # the process "dies": no more beats, no leave
    assert beats is not None
    beats.cancel()
    took = await until(lambda: _is(last_count(on_a) == 1), TTL + BEAT + 1.0)
    assert took <= TTL + BEAT + 0.5
    assert [v.name for v in await a.presence.of(Page)] == ["alice@1"]
    await body_a.aclose()
    await body_b.aclose()


async def _is(value: bool) -> bool:
    return value


async def test_joins_and_leaves_of_several_instances_are_written_in_one_step(tracker: Any) -> None:
    presence, _ = tracker
    await presence.update({"page:1": {"c1": ada(), "c2": bob()}, "page:2": {"c3": ada()}}, {}, ttl=15)
    await presence.update({"page:2": {"c4": bob()}}, {"page:1": ["c1", "gone"], "page:2": ["c3"]}, ttl=15)
    assert await presence.viewers_of(["page:1", "page:2"]) == {"page:1": [bob()], "page:2": [bob()]}
    await presence.update({}, {}, ttl=15)  # nothing to do: nothing done


async def test_several_instances_are_read_at_once(tracker: Any) -> None:
    presence, clock = tracker
    await presence.join("page:1", "c1", ada(), ttl=15)
    await presence.join("page:2", "c2", bob(), ttl=1)
    await presence.join("page:2", "c3", ada(), ttl=15)
    clock.now += 2
    assert await presence.viewers_of(["page:1", "page:2", "page:3"]) == {
        "page:1": [ada()], "page:2": [ada()], "page:3": [],
    }
    assert await presence.viewers_of([]) == {}

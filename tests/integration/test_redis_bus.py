"""The bus over the real Redis: two buses stand for two server processes.

Each test uses a key prefix of its own (``redis_prefix``), so its channel, numbering and log
are its own too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from integration_support import serve
from redis import asyncio as aioredis
from sm_http import DATASTAR, asgi_client, open_stream, parse_sse, post_event

from starmodel import DomainEvent, Entity, EntityChanged, StarModel, StateStore, computed, event
from starmodel.adapters.driven.bus.redis import RedisBus
from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.app.bus import delivery_position


@dataclass(frozen=True)
class OrderPlaced(DomainEvent):
    order: int
    items: list[str]


class NotSerializable(DomainEvent):
    def __init__(self, payload: object) -> None:
        self.payload = payload


class Seen:
    """Records what a handler received, with the bus position it came with."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, tuple[str, int] | None]] = []

    async def __call__(self, event: Any) -> None:
        self.items.append((event, delivery_position.get()))

    @property
    def events(self) -> list[Any]:
        return [event for event, _ in self.items]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                await asyncio.sleep(0.01)


@pytest.fixture
async def make_bus(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[[], Awaitable[RedisBus]]]:
    made: list[tuple[RedisBus, RedisConnection]] = []

    async def make() -> RedisBus:
        connection = RedisConnection(redis_url, prefix=redis_prefix)
        bus = RedisBus(connection, log_size=1000)
        made.append((bus, connection))
        assert await bus.wait_connected(5), "the bus did not subscribe"
        return bus

    yield make
    for bus, connection in made:
        await bus.close()
        await connection.close()


def change(count: int) -> EntityChanged:
    return EntityChanged("thing", "global", "global", {"count": count})


async def test_a_fact_reaches_everywhere_handlers_of_every_process_with_one_position(make_bus):
    a, b = await make_bus(), await make_bus()
    on_a, on_b, once = Seen(), Seen(), Seen()
    a.subscribe(EntityChanged, on_a, everywhere=True)
    b.subscribe(EntityChanged, on_b, everywhere=True)
    a.subscribe(EntityChanged, once)  # the publisher's own, run once, at once
    b.subscribe(EntityChanged, once)
    await a.publish(change(1))
    assert once.events == [change(1)] and once.items[0][1] is None
    await on_a.wait_for(1)
    await on_b.wait_for(1)
    assert on_a.events == on_b.events == [change(1)]
    assert on_a.items[0][1] == on_b.items[0][1] is not None


async def test_domain_events_cross_processes_others_stay_home(make_bus):
    a, b = await make_bus(), await make_bus()
    on_a, on_b = Seen(), Seen()
    a.subscribe(DomainEvent, on_a, everywhere=True)
    b.subscribe(DomainEvent, on_b, everywhere=True)
    local_only = NotSerializable(object())
    await a.publish(local_only)
    await a.publish(OrderPlaced(7, ["tea"]))
    await on_b.wait_for(1)
    await on_a.wait_for(2)
    assert on_b.events == [OrderPlaced(7, ["tea"])]
    assert on_a.events[0] is local_only and on_a.items[0][1] is None


async def test_facts_arrive_in_one_order_everywhere(make_bus):
    a, b = await make_bus(), await make_bus()
    on_a, on_b = Seen(), Seen()
    a.subscribe(EntityChanged, on_a, everywhere=True)
    b.subscribe(EntityChanged, on_b, everywhere=True)
    await asyncio.gather(*(bus.publish(change(n)) for n in range(20) for bus in (a, b)))
    await on_a.wait_for(40)
    await on_b.wait_for(40)
    assert [p for _, p in on_a.items] == [p for _, p in on_b.items]
    seqs = [p[1] for _, p in on_a.items if p]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40


async def test_a_dropped_subscription_catches_up_from_the_log(make_bus, redis_url, redis_prefix):
    a, b = await make_bus(), await make_bus()
    on_b = Seen()
    b.subscribe(EntityChanged, on_b, everywhere=True)
    a.subscribe(EntityChanged, Seen(), everywhere=True)
    await a.publish(change(1))
    await on_b.wait_for(1)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every subscription drops
        # a publishes at once, while the subscriptions are away: the facts go to the log
        for n in (2, 3, 4):
            await a.publish(change(n))
    finally:
        await admin.aclose()
    await on_b.wait_for(4, timeout=10)
    assert [e.changes["count"] for e in on_b.events] == [1, 2, 3, 4]


async def test_foreign_messages_on_the_channel_are_ignored(make_bus, redis_url, redis_prefix):
    a, b = await make_bus(), await make_bus()
    on_b = Seen()
    b.subscribe(EntityChanged, on_b, everywhere=True)
    a.subscribe(EntityChanged, Seen(), everywhere=True)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.publish(f"{redis_prefix}:bus", "not a starmodel message")
        await admin.publish(f"{redis_prefix}:bus", "x 99999 {not json")
    finally:
        await admin.aclose()
    await a.publish(change(5))
    await on_b.wait_for(1)
    assert on_b.events == [change(5)]


async def test_redis_losing_its_data_asks_every_process_to_resync(make_bus, redis_url, redis_prefix):
    a, b = await make_bus(), await make_bus()
    resyncs: list[str] = []
    b.on_resync(lambda: resyncs.append("b"))
    on_b = Seen()
    b.subscribe(EntityChanged, on_b, everywhere=True)
    a.subscribe(EntityChanged, Seen(), everywhere=True)
    await a.publish(change(1))
    await on_b.wait_for(1)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.delete(f"{redis_prefix}:bus:epoch", f"{redis_prefix}:bus:seq")  # as after a restart
    finally:
        await admin.aclose()
    await a.publish(change(2))
    await on_b.wait_for(2)
    assert resyncs == ["b"]
    assert on_b.items[1][1] is not None and on_b.items[1][1][0] != on_b.items[0][1][0]  # new epoch


async def test_history_gives_the_facts_after_a_position_from_the_log(make_bus):
    a, b = await make_bus(), await make_bus()
    on_b = Seen()
    b.subscribe(EntityChanged, on_b, everywhere=True)
    a.subscribe(EntityChanged, Seen(), everywhere=True)
    for n in range(1, 6):
        await a.publish(change(n))
    await on_b.wait_for(5)
    first_position = on_b.items[0][1]
    assert first_position is not None
    epoch, first = first_position
    found = await b.history(epoch, first + 1, limit=100)
    assert found is not None
    assert [(position, fact.changes["count"]) for position, fact in found] == [
        ((epoch, first + n), n + 1) for n in (2, 3, 4)
    ]
    assert await b.history(epoch, first + 4, limit=100) == []  # up to date
    assert await b.history(epoch, first, limit=2) is None  # more than the caller wants
    assert await b.history("another-epoch", first, limit=100) is None


# --- apps: a tab moving to a process that started after it left -----------------------------


class Pulse(Entity):
    model_config = {"scope": "global", "namespace": "bus_pulse"}
    count: int = 0

    @event
    def beat(self) -> None:
        self.count += 1


async def test_a_tab_resumes_on_a_process_started_after_it_left(redis_url, redis_prefix):
    """The tab saw fact n on process A; changes follow; it reconnects to process C, started
    later: C replays what the tab missed from the Redis log instead of a full resync."""

    def make() -> StarModel:
        return StarModel(entities=[Pulse], secret_key="bus", redis_url=redis_url, redis_prefix=redis_prefix)

    a = make()
    async with serve(a.app, stop=a.hub.close_all) as url_a, \
            httpx.AsyncClient(base_url=url_a, timeout=5) as clicker:
        await clicker.get("/")
        post = {**DATASTAR, "Origin": url_a}
        async with httpx.AsyncClient(base_url=url_a, timeout=5) as tab, \
                open_stream(tab, "GET", "/_starmodel/live", headers=DATASTAR) as stream:
            await stream.next(comments=True)
            assert (await clicker.post("/bus_pulse/beat", headers=post, json={})).status_code == 200
            seen = await stream.next()
            assert seen.signals == {"bus_pulse": {"count": 1}} and seen.id
        for _ in range(3):  # while the tab is away
            assert (await clicker.post("/bus_pulse/beat", headers=post, json={})).status_code == 200
        c = make()
        resume = {**DATASTAR, "Last-Event-ID": seen.id}
        async with serve(c.app, stop=c.hub.close_all) as url_c, \
                httpx.AsyncClient(base_url=url_c, timeout=5) as tab, \
                open_stream(tab, "GET", "/_starmodel/live", headers=resume) as resumed:
            missed = [await resumed.next() for _ in range(3)]
            assert [event.signals for event in missed] == [{"bus_pulse": {"count": n}} for n in (2, 3, 4)]
            epoch, seq = seen.id.split("-")
            assert [event.id for event in missed] == [f"{epoch}-{int(seq) + n}" for n in (1, 2, 3)]


async def test_a_periodic_job_runs_once_per_tick_across_processes(redis_url, redis_prefix):
    runs: list[str] = []

    def make(name: str) -> StarModel:
        app = StarModel(entities=[Pulse], secret_key="bus", redis_url=redis_url, redis_prefix=redis_prefix)

        @app.every(0.1, name="sample")
        def sample() -> None:
            runs.append(name)

        return app

    a, b = make("a"), make("b")
    async with a.app.router.lifespan_context(a.app), b.app.router.lifespan_context(b.app):
        await asyncio.sleep(1.05)
    assert 8 <= len(runs) <= 12  # ~10 ticks, each run by one process only, not ~20


class Bag(Entity):
    model_config = {"store": StateStore.SERVER_REDIS, "namespace": "bus_bag"}
    items: list[str] = []

    @computed
    def size(self) -> int:
        return len(self.items)

    @event
    def put(self, item: str):
        self.items = [*self.items, item]


async def test_a_redis_entity_with_computed_values_keeps_working(redis_url, redis_prefix):
    """Computed values are derived, not stored: reading the entity back must not refuse them."""
    sm = StarModel(entities=[Bag], secret_key="bus", redis_url=redis_url, redis_prefix=redis_prefix)
    async with sm.app.router.lifespan_context(sm.app), asgi_client(sm) as client:
        for n, item in enumerate(["tea", "milk", "bread"], start=1):
            answer = await post_event(client, "/bus_bag/put", item=item)
            assert answer.status_code == 200, answer.text
            assert parse_sse(answer.text)[0].signals["bus_bag"]["size"] == n

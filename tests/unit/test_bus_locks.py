"""The in-process bus and the per-key locks."""

import asyncio
import logging

import pytest

from starmodel import DomainEvent, EntityChanged
from starmodel.app.bus import InProcessBus
from starmodel.app.locks import KeyedLocks


class OrderPlaced(DomainEvent):
    def __init__(self, order_id: int) -> None:
        self.order_id = order_id


async def test_subscribers_receive_events_of_their_type_in_order():
    bus = InProcessBus()
    received: list[tuple[str, object]] = []

    async def first(event):
        received.append(("first", event))

    async def second(event):
        received.append(("second", event))

    bus.subscribe(OrderPlaced, first)
    bus.subscribe(OrderPlaced, second)
    placed = OrderPlaced(1)
    await bus.publish(placed)
    await bus.publish(EntityChanged("counter", "global", "global"))
    assert received == [("first", placed), ("second", placed)]


async def test_subscribers_of_a_base_class_receive_subclasses():
    bus = InProcessBus()
    received: list[object] = []

    async def on_any(event):
        received.append(event)

    bus.subscribe(DomainEvent, on_any)
    placed = OrderPlaced(2)
    changed = EntityChanged("counter", "global", "global", {"count": 1})
    await bus.publish(placed)
    await bus.publish(changed)
    await bus.publish("not a domain event")
    assert received == [placed, changed]


async def test_a_failing_subscriber_is_isolated(caplog):
    bus = InProcessBus()
    received: list[int] = []

    async def broken(event):
        raise RuntimeError("subscriber bug")

    async def healthy(event):
        received.append(event.order_id)

    bus.subscribe(OrderPlaced, broken)
    bus.subscribe(OrderPlaced, healthy)
    with caplog.at_level(logging.ERROR, logger="starmodel.bus"):
        await bus.publish(OrderPlaced(3))
        await bus.publish(OrderPlaced(4))
    assert received == [3, 4]
    assert "subscriber bug" in caplog.text


async def test_keyed_locks_serialise_one_key_and_forget_it_afterwards():
    locks = KeyedLocks()
    inside = 0
    most_inside = 0

    async def work():
        nonlocal inside, most_inside
        async with locks.hold("k"):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(work() for _ in range(20)))
    assert most_inside == 1
    assert len(locks) == 0


async def test_keyed_locks_let_different_keys_run_together():
    locks = KeyedLocks()
    both_in = asyncio.Event()
    arrived = 0

    async def work(key):
        nonlocal arrived
        async with locks.hold(key):
            arrived += 1
            if arrived == 2:
                both_in.set()
            await asyncio.wait_for(both_in.wait(), 1)

    await asyncio.gather(work("a"), work("b"))
    assert len(locks) == 0


async def test_keyed_locks_do_not_leak_after_errors_or_cancellation():
    locks = KeyedLocks()
    with pytest.raises(ValueError):
        async with locks.hold("k"):
            raise ValueError("boom")
    assert len(locks) == 0

    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder():
        async with locks.hold("k"):
            holding.set()
            await release.wait()

    async def waiter():
        async with locks.hold("k"):
            pass

    held = asyncio.create_task(holder())
    await asyncio.wait_for(holding.wait(), 1)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await asyncio.wait_for(held, 1)
    assert len(locks) == 0

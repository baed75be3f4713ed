"""The testing kit and long-running work: cancel calls, waiting for runs, a fake clock for
``starmodel.sleep`` in events and for periodic jobs."""

from __future__ import annotations

import asyncio
import time

import pytest

import starmodel
from starmodel import Entity, StarModel, event
from starmodel.testing import EventClient, FakeClock


class Timer(Entity):
    model_config = {"scope": "global", "namespace": "kit_timer"}
    remaining: int = 0
    status: str = "idle"

    @event(background=True)
    async def start(self, seconds: int = 3):
        """Count down."""
        self.remaining, self.status = seconds, "running"
        while self.remaining > 0:
            await starmodel.sleep(1)
            self.remaining -= 1
            yield None
        self.status = "done"

    @event
    def reset(self):
        self.remaining, self.status = 0, "idle"

    @event(background=True, title="The big import")
    async def big_import(self):
        """Not what toasts say: the title is."""
        await starmodel.sleep(60)


class Stats(Entity):
    model_config = {"scope": "global", "namespace": "kit_stats"}
    ticks: int = 0

    @event
    def tick(self):
        self.ticks += 1


def app() -> StarModel:
    sm = StarModel(entities=[Timer, Stats], secret_key="kit")
    sm.every(60, Stats.tick)
    return sm


async def test_a_fake_clock_drives_background_sleeps_without_waiting():
    began = time.monotonic()
    async with EventClient(app(), fake_clock=True) as client:
        assert (await client.call(Timer.start, seconds=100)).ok
        assert (await client.state(Timer)).remaining == 100
        await client.advance(3)
        assert (await client.state(Timer)).remaining == 97
        await client.advance(97)
        await client.wait_for_runs()
        assert (await client.state(Timer)).status == "done"
    assert time.monotonic() - began < 5  # 100 seconds of countdown, not waited for


async def test_a_fake_clock_drives_periodic_jobs():
    async with EventClient(app(), fake_clock=True) as client:
        assert client.clock is not None
        await client.advance(60 * 3)
        assert (await client.state(Stats)).ticks == 3
        await client.advance(59)
        assert (await client.state(Stats)).ticks in (3, 4)  # ticks are aligned on the wall clock
        await client.advance(61)
        assert (await client.state(Stats)).ticks in (4, 5)


async def test_cancel_is_a_call_and_the_run_stops():
    async with EventClient(app(), fake_clock=True) as client, client.session().watch() as viewer:
        assert (await client.call(Timer.start, seconds=10)).ok
        await client.advance(2)
        stopping = await client.call(Timer.start.cancel)
        assert stopping.status == 200 and stopping.toasts[0].variant == "info"
        assert stopping.toasts[0].message == "Stopping Count down…"  # its docstring's first line
        await client.wait_for_runs()
        assert (await client.state(Timer)).remaining == 8
        await viewer.wait_for(lambda view: any("Count down was cancelled" in t.message for t in view.toasts))
        with pytest.raises(TypeError, match="not a background event"):
            await client.call(Timer.reset.cancel)


async def test_messages_name_the_event_by_its_title():
    async with EventClient(app(), fake_clock=True) as client, client.session().watch() as viewer:
        assert (await client.call(Timer.big_import)).ok
        stopping = await client.call(Timer.big_import.cancel)
        assert stopping.toasts[0].message == "Stopping The big import…"
        await client.wait_for_runs()
        await viewer.wait_for(lambda view: bool(view.toasts))
        assert [t.message for t in viewer.toasts] == ["The big import was cancelled"]
    assert Timer.events()["reset"].label == "reset"  # no title, no docstring: its name


async def test_advance_needs_a_fake_clock():
    async with EventClient(app()) as client:
        with pytest.raises(RuntimeError, match="fake_clock=True"):
            await client.advance(1)


async def test_the_fake_clock_wakes_sleepers_in_order():
    clock = FakeClock(start=1000.0)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    tasks = [asyncio.create_task(sleeper(s)) for s in (3, 1, 2)]
    await asyncio.sleep(0)
    await clock.advance(2.5)
    assert woke == [1001.0, 1002.0] and clock.now() == 1002.5
    await clock.advance(1)
    assert woke == [1001.0, 1002.0, 1003.0]
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="forward"):
        await clock.advance(-1)

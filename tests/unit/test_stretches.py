"""Long-running bodies driven stretch by stretch: what each stretch sees and commits, how waits,
yields, ``hold()``, timeouts, cancels and failures behave, and that nothing stays held."""

from __future__ import annotations

import asyncio

import pytest
from fakes import RecordingBus

from starmodel import CallContext, Entity, EntityChanged, event, toast
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals
from starmodel.core.messages import CancelRequested, EventOutputs


class Gauge(Entity):
    model_config = {"namespace": "st_gauge", "scope": "global"}
    n: int = 0
    notes: list[str] = []

    @event
    def bump(self):
        self.n += 1

    @event
    async def stream(self, pause: float = 0.05):
        self.notes = [*self.notes, "a"]
        await asyncio.sleep(pause)  # released here: the bump below gets in
        self.n += 10
        yield toast("first")
        self.n += 10
        yield toast("second")

    @event(background=True)
    async def timed(self):
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            self.notes = [*self.notes, "timed out"]  # the body handled its own timeout

    @event(background=True)
    async def held_yield(self):
        async with self.hold():
            self.n += 1
            yield toast("inside")  # committed and shown, and still held
            await asyncio.sleep(0.05)
            self.n += 1

    @event(background=True)
    async def breaks_state(self):
        self.n = 1
        await asyncio.sleep(0.01)
        self.notes.append(42)  # type: ignore[arg-type]  # not a str: refused at the next commit
        await asyncio.sleep(0.01)
        self.n = 99

    @event(background=True)
    async def catches_cancel(self):
        self.notes = ["running"]
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.notes = [*self.notes, "cleaned up"]  # the entity is held again here
            yield toast("stopped")


def make() -> tuple[Dispatcher, MemoryRepository, RecordingBus]:
    bus = RecordingBus()
    store = MemoryStore()
    dispatcher = Dispatcher(lambda cls: UnitOfWork(MemoryRepository(store), bus), read_json=read_json)
    return dispatcher, MemoryRepository(store), bus


async def start(dispatcher: Dispatcher, name: str, **args: str):
    spec = Gauge.events()[name]
    return await dispatcher.dispatch(Gauge, spec, CallContext(session_id="s"), args)


async def state(repo: MemoryRepository) -> Gauge:
    found = await repo.get(Gauge, "global")
    assert found is not None
    return found


def shown(bus: RecordingBus) -> list:
    return [item for fact in bus.published if isinstance(fact, EventOutputs) for item in fact.outputs]


async def test_a_stream_releases_its_entity_at_each_wait_and_sends_the_waits_changes_with_the_next_step():
    dispatcher, repo, _ = make()
    result = await start(dispatcher, "stream")
    assert result.stream is not None
    await start(dispatcher, "bump")  # while the stream sleeps
    steps = [outputs async for outputs in result.stream]
    assert steps[0] == [
        PatchSignals({"st_gauge": {"notes": ["a"]}}),
        PatchSignals({"st_gauge": {"n": 11}}),  # the bump's change is in self
        toast("first"),
    ]
    assert steps[1] == [PatchSignals({"st_gauge": {"n": 21}}), toast("second")]
    assert (await state(repo)).n == 21
    assert len(dispatcher.locks) == 0


async def test_a_timeout_inside_the_body_is_the_bodys_own():
    dispatcher, repo, _ = make()
    await start(dispatcher, "timed")
    await dispatcher.wait_until_idle(2)
    assert (await state(repo)).notes == ["timed out"]


async def test_a_yield_inside_hold_commits_and_shows_but_keeps_the_entity():
    dispatcher, repo, bus = make()
    await start(dispatcher, "held_yield")
    await asyncio.sleep(0.01)
    bump = asyncio.create_task(start(dispatcher, "bump"))
    await asyncio.sleep(0.02)
    assert not bump.done()  # still held after the yield
    assert (await state(repo)).n == 1
    assert toast("inside") in shown(bus)
    await bump
    await dispatcher.wait_until_idle(2)
    assert (await state(repo)).n == 3
    assert len(dispatcher.locks) == 0


async def test_a_change_refused_at_a_wait_ends_the_run_with_an_error_and_keeps_earlier_stretches():
    dispatcher, repo, bus = make()
    await start(dispatcher, "breaks_state")
    await dispatcher.wait_until_idle(2)
    assert (await state(repo)).n == 1
    [error] = [item for item in shown(bus) if getattr(item, "variant", None) == "error"]
    assert "would become invalid" in error.message
    assert len(dispatcher.locks) == 0


async def test_a_cancel_reaches_the_body_at_its_wait_with_the_entity_held_again():
    dispatcher, repo, bus = make()
    await start(dispatcher, "catches_cancel")
    await asyncio.sleep(0.02)
    changes_before = [f for f in bus.published if isinstance(f, EntityChanged)]
    spec = Gauge.events()["catches_cancel"]
    await dispatcher.cancel(Gauge, spec, CallContext(session_id="s"), {})
    [request] = [fact for fact in bus.published if isinstance(fact, CancelRequested)]
    await dispatcher.on_cancel_requested(request)  # what the bus does in every process
    await dispatcher.wait_until_idle(2)
    assert (await state(repo)).notes == ["running", "cleaned up"]
    assert toast("stopped") in shown(bus)
    assert len([f for f in bus.published if isinstance(f, EntityChanged)]) == len(changes_before) + 1
    assert not any("was cancelled" in str(getattr(i, "message", "")) for i in shown(bus))


@pytest.mark.parametrize("name", ["held_yield", "catches_cancel"])
async def test_stopping_the_app_releases_everything(name):
    dispatcher, _, _ = make()
    await start(dispatcher, name)
    await asyncio.sleep(0.01)
    tasks = dispatcher.running_tasks()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=2)
    assert len(dispatcher.locks) == 0

"""Dispatcher: identity, parameter binding, retries, authorization, streaming, concurrency."""

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
from fakes import FakeRepository, RecordingBus

from starmodel import (
    CallContext,
    ConcurrencyError,
    Entity,
    EntityChanged,
    EntityNotFound,
    PermissionDenied,
    ValidationFailed,
    computed,
    event,
    toast,
)
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals
from starmodel.core.ports import EntityRepository


class Clicker(Entity):
    model_config = {"namespace": "disp_clicker"}
    count: int = 0
    label: str = ""
    runs: int = 0

    @computed
    def doubled(self) -> int:
        return self.count * 2

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    async def slow_increment(self):
        value = self.count
        await asyncio.sleep(0)
        self.count = value + 1

    @event
    def set_to(self, value: int = 7):
        self.count = value

    @event
    def rename(self, label: str):
        self.label = label

    @event
    def annotate(self, note: str | None = None):
        self.label = note or ""

    @event
    def fail_after_change(self):
        self.count = 1000
        raise RuntimeError("boom")

    @event
    def break_type(self):
        self.count = "many"  # type: ignore[assignment]

    @event
    def counted(self):
        self.runs += 1
        self.count += 1

    @event
    def with_output(self):
        self.count += 1
        return [toast("done"), None, (toast("twice"),)]

    @event(allow=lambda ctx: ctx.user == "admin" and ctx.entity.count < 5)
    def guarded(self):
        self.count += 100

    @event
    async def progress(self, steps: int, fail_at: int = 0):
        for step in range(1, steps + 1):
            if step == fail_at:
                self.count = -1
                raise RuntimeError("step failed")
            self.count = step
            yield toast(f"step {step}")
        self.label = "done"


class SharedClicker(Entity):
    model_config = {"namespace": "disp_shared", "scope": "global"}
    count: int = 0

    @event
    def increment(self, amount: int = 1):
        self.count += amount


class Record(Entity):
    model_config = {"namespace": "disp_record", "scope": "id"}
    stock: int = 0

    @event
    def adjust(self, delta: int):
        self.stock += delta


def ctx(session="s1", tab=None, user=None):
    return CallContext(session_id=session, tab_id=tab, user=user)


def spec(cls, name):
    return cls.events()[name]


def make(repo: EntityRepository | MemoryStore | None = None, retries: int = 8):
    """A dispatcher on ``repo`` (one repository for every unit of work), or else on a memory
    store (a fresh repository of it per unit of work); returns it, a repository to check the
    store with, and the bus."""
    bus = RecordingBus()
    if isinstance(repo, EntityRepository):
        single = repo
        dispatcher = Dispatcher(lambda cls: UnitOfWork(single, bus), read_json=read_json, retries=retries)
        return dispatcher, repo, bus
    store = repo if repo is not None else MemoryStore()
    dispatcher = Dispatcher(
        lambda cls: UnitOfWork(MemoryRepository(store), bus), read_json=read_json, retries=retries
    )
    return dispatcher, MemoryRepository(store), bus


async def run(dispatcher, cls, name, args=None, signals=None, context=None):
    return await dispatcher.dispatch(cls, spec(cls, name), context or ctx(), args or {}, signals)


async def stored(repo, cls, key="s1"):
    return await repo.get(cls, key)


# --- outputs -----------------------------------------------------------------------------


async def test_outputs_are_changed_signals_then_returned_values():
    dispatcher, _, bus = make()
    result = await run(dispatcher, Clicker, "with_output")
    assert result.outputs == [
        PatchSignals({"disp_clicker": {"count": 1, "doubled": 2}}),
        toast("done"),
        toast("twice"),
    ]
    assert [type(e) for e in bus.published] == [EntityChanged]


async def test_no_change_means_no_patch():
    dispatcher, _, bus = make()
    result = await run(dispatcher, Clicker, "set_to", {"value": "0"})
    assert result.outputs == []
    assert bus.published == []


# --- parameter binding -------------------------------------------------------------------


async def test_query_argument_beats_signal_beats_default():
    dispatcher, repo, _ = make()
    signals = {"disp_clicker": {"value": 5}, "other": {"value": 9}}
    await run(dispatcher, Clicker, "set_to", {"value": "3"}, signals)
    assert (await stored(repo, Clicker)).count == 3
    await run(dispatcher, Clicker, "set_to", {}, signals)
    assert (await stored(repo, Clicker)).count == 5
    await run(dispatcher, Clicker, "set_to", {}, {"other": {"value": 9}})
    assert (await stored(repo, Clicker)).count == 7


async def test_signals_do_not_set_entity_fields():
    dispatcher, repo, _ = make()
    await run(dispatcher, Clicker, "increment", {}, {"disp_clicker": {"count": 500}})
    assert (await stored(repo, Clicker)).count == 1


async def test_unknown_parameter_is_refused_before_anything_runs():
    dispatcher, repo, bus = make()
    with pytest.raises(ValidationFailed) as failed:
        await run(dispatcher, Clicker, "increment", {"amount": "1", "bogus": "2"})
    assert failed.value.errors == {"bogus": "Unexpected parameter"}
    assert await stored(repo, Clicker) is None
    assert bus.published == []


async def test_bad_and_missing_parameters_are_validation_errors():
    dispatcher, repo, _ = make()
    with pytest.raises(ValidationFailed) as bad:
        await run(dispatcher, Clicker, "increment", {"amount": "lots"})
    assert list(bad.value.errors) == ["amount"]
    with pytest.raises(ValidationFailed) as missing:
        await run(dispatcher, Clicker, "rename")
    assert missing.value.errors == {"label": "Field required"}
    assert await stored(repo, Clicker) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123", "123"),
        ("true", "true"),
        ("null", "null"),
        ("hello world", "hello world"),
        ('"quoted"', "quoted"),
        ("[1, 2]", "[1, 2]"),
    ],
)
async def test_str_parameters_keep_raw_strings(raw, expected):
    dispatcher, repo, _ = make()
    await run(dispatcher, Clicker, "rename", {"label": raw})
    assert (await stored(repo, Clicker)).label == expected


async def test_optional_str_parameters_keep_raw_strings_too():
    dispatcher, repo, _ = make()
    await run(dispatcher, Clicker, "annotate", {"note": "42"})
    assert (await stored(repo, Clicker)).label == "42"


async def test_json_arguments_are_decoded_for_typed_parameters():
    dispatcher, repo, _ = make()
    await run(dispatcher, Clicker, "increment", {"amount": "-4"})
    assert (await stored(repo, Clicker)).count == -4


# --- identity ----------------------------------------------------------------------------


async def test_sessions_are_isolated_and_key_arguments_cannot_cross_them():
    dispatcher, repo, _ = make()
    await run(dispatcher, Clicker, "increment", {"amount": "2"}, context=ctx("alice"))
    await run(dispatcher, Clicker, "increment", {"amount": "5", "_key": "alice"}, context=ctx("bob"))
    assert (await stored(repo, Clicker, "alice")).count == 2
    assert (await stored(repo, Clicker, "bob")).count == 5


async def test_global_entities_are_shared():
    dispatcher, repo, _ = make()
    await run(dispatcher, SharedClicker, "increment", context=ctx("alice"))
    await run(dispatcher, SharedClicker, "increment", context=ctx("bob"))
    assert (await stored(repo, SharedClicker, "global")).count == 2


async def test_keyed_entities_need_a_key():
    dispatcher, repo, _ = make()
    with pytest.raises(EntityNotFound):
        await run(dispatcher, Record, "adjust", {"delta": "1"})
    with pytest.raises(EntityNotFound):  # a record that does not exist is not made up
        await run(dispatcher, Record, "adjust", {"delta": "3", "_key": "r1"})
    record = Record()
    record._sm_key = "r1"
    await repo.save(record)
    await repo.commit()
    await run(dispatcher, Record, "adjust", {"delta": "3", "_key": "r1"})
    assert (await stored(repo, Record, "r1")).stock == 3


async def test_instance_action_round_trips_to_the_same_record():
    dispatcher, repo, _ = make()
    record = Record(stock=10)
    record._sm_key = "r-9"
    await repo.save(record)
    await repo.commit()
    expression = record.adjust(-1)
    query = parse_qs(urlsplit(expression.split("'")[1]).query)
    args = {name: values[0] for name, values in query.items()}
    await run(dispatcher, Record, "adjust", args)
    assert (await stored(repo, Record, "r-9")).stock == 9


# --- failures ----------------------------------------------------------------------------


async def test_exception_leaves_state_unchanged_and_publishes_nothing():
    dispatcher, repo, bus = make()
    await run(dispatcher, Clicker, "increment")
    bus.published.clear()
    with pytest.raises(RuntimeError, match="boom"):
        await run(dispatcher, Clicker, "fail_after_change")
    assert (await stored(repo, Clicker)).count == 1
    assert bus.published == []
    await run(dispatcher, Clicker, "increment")
    assert (await stored(repo, Clicker)).count == 2


async def test_invalid_assignment_inside_an_event_is_a_validation_error():
    dispatcher, repo, bus = make()
    with pytest.raises(ValidationFailed) as failed:
        await run(dispatcher, Clicker, "break_type")
    assert list(failed.value.errors) == ["count"]
    assert await stored(repo, Clicker) is None
    assert bus.published == []


async def test_allow_hook_sees_the_caller_and_the_entity():
    dispatcher, repo, bus = make()
    with pytest.raises(PermissionDenied):
        await run(dispatcher, Clicker, "guarded", context=ctx(user="guest"))
    assert await stored(repo, Clicker) is None
    await run(dispatcher, Clicker, "guarded", context=ctx(user="admin"))
    assert (await stored(repo, Clicker)).count == 100
    bus.published.clear()
    with pytest.raises(PermissionDenied):  # the entity's state is part of the decision
        await run(dispatcher, Clicker, "guarded", context=ctx(user="admin"))
    assert (await stored(repo, Clicker)).count == 100
    assert bus.published == []


# --- concurrency -------------------------------------------------------------------------


async def test_lost_write_race_is_retried():
    repo = FakeRepository()
    dispatcher, _, bus = make(repo)
    repo.conflicts = 3
    await run(dispatcher, Clicker, "counted")
    saved = repo.stored(Clicker, "s1")
    assert saved is not None
    assert (saved.count, saved.runs) == (1, 1)  # the state of the run that won, once
    assert repo.log.count("save") == 4
    assert len(bus.published) == 1


async def test_retries_give_up_with_concurrency_error():
    repo = FakeRepository()
    dispatcher, _, bus = make(repo, retries=3)
    repo.conflicts = 3
    with pytest.raises(ConcurrencyError):
        await run(dispatcher, Clicker, "counted")
    assert repo.stored(Clicker, "s1") is None
    assert bus.published == []


async def test_hundred_concurrent_increments_lose_nothing():
    dispatcher, repo, bus = make()
    await asyncio.gather(*(run(dispatcher, Clicker, "slow_increment") for _ in range(100)))
    assert (await stored(repo, Clicker)).count == 100
    assert len(bus.published) == 100


async def test_two_dispatchers_on_one_store_lose_nothing():
    store = MemoryStore()
    first, repo, _ = make(store)
    second, _, _ = make(store)
    calls = [run(d, SharedClicker, "increment") for d in (first, second) for _ in range(10)]
    await asyncio.gather(*calls)
    assert (await stored(repo, SharedClicker, "global")).count == 20


async def test_locks_are_released_after_events():
    dispatcher, _, _ = make()
    await asyncio.gather(*(run(dispatcher, Clicker, "increment") for _ in range(10)))
    with pytest.raises(RuntimeError):
        await run(dispatcher, Clicker, "fail_after_change")
    assert len(dispatcher.locks) == 0


# --- streaming events --------------------------------------------------------------------


async def test_each_yield_is_committed_before_the_next_step():
    dispatcher, repo, bus = make()
    result = await run(dispatcher, Clicker, "progress", {"steps": "3"})
    assert result.stream is not None
    seen = []
    async for outputs in result.stream:
        seen.append(outputs)
        current = await stored(repo, Clicker)
        if current is not None and len(seen) <= 3:
            assert current.count == len(seen)
    assert seen[0] == [PatchSignals({"disp_clicker": {"count": 1, "doubled": 2}}), toast("step 1")]
    assert seen[3] == [PatchSignals({"disp_clicker": {"label": "done"}})]
    assert len(seen) == 4
    assert len(bus.published) == 4
    assert len(dispatcher.locks) == 0


async def test_failure_mid_stream_keeps_committed_steps_only():
    dispatcher, repo, bus = make()
    result = await run(dispatcher, Clicker, "progress", {"steps": "5", "fail_at": "3"})
    assert result.stream is not None
    steps = 0
    with pytest.raises(RuntimeError, match="step failed"):
        async for _ in result.stream:
            steps += 1
    assert steps == 2
    assert (await stored(repo, Clicker)).count == 2
    assert len(bus.published) == 2
    assert len(dispatcher.locks) == 0


async def test_streaming_event_parameters_are_validated_up_front():
    dispatcher, repo, _ = make()
    with pytest.raises(ValidationFailed):
        await run(dispatcher, Clicker, "progress", {"steps": "three"})
    assert await stored(repo, Clicker) is None


# --- current state -----------------------------------------------------------------------


async def test_current_state_of_a_session():
    dispatcher, _, _ = make()
    await run(dispatcher, Clicker, "increment", context=ctx("alice"))
    await run(dispatcher, SharedClicker, "increment", {"amount": "4"}, context=ctx("bob"))
    state = await dispatcher.current_state([Clicker, SharedClicker, Record], "alice")
    assert state == {
        "disp_clicker": {"count": 1, "label": "", "runs": 0, "doubled": 2},
        "disp_shared": {"count": 4},
    }
    # nothing stored for this session: its tabs get the defaults (stale values must go)
    assert await dispatcher.current_state([Clicker], "nobody") == {
        "disp_clicker": {"count": 0, "label": "", "runs": 0, "doubled": 0}
    }

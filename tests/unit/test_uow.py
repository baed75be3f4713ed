"""UnitOfWork: validate, save, commit, then publish; roll back on any error."""

import asyncio
import json
import logging

import pytest
from fakes import FakeDecidingRepository, FakeLocalRepository, FakeRepository, RecordingBus

from starmodel import (
    CallContext,
    CommitIncomplete,
    ConcurrencyError,
    DomainEvent,
    Entity,
    EntityChanged,
    ServerOnly,
    StoreUnavailable,
    ValidationFailed,
    computed,
    event,
)
from starmodel.adapters.driven.stores.memory import MemoryRepository
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.uow import UnitOfWork


class Tally(Entity):
    model_config = {"namespace": "uow_tally"}
    count: int = 0
    items: list[int] = []
    audit: ServerOnly[list[str]] = []

    @computed
    def doubled(self) -> int:
        return self.count * 2


class Board(Entity):
    model_config = {"namespace": "uow_board", "scope": "global"}
    title: str = ""


class Milestone(DomainEvent):
    def __init__(self, count: int) -> None:
        self.count = count


CTX = CallContext(session_id="sess-1", tab_id="tab-1")


async def test_commit_publishes_changes_after_the_store_committed():
    repo, bus = FakeRepository(), RecordingBus()
    seen_in_store: list[int | None] = []

    async def on_change(change):
        stored = repo.stored(Tally, "sess-1")
        seen_in_store.append(stored.count if stored else None)

    bus.subscribe(EntityChanged, on_change)
    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "sess-1")
        tally.count = 3
        changes = await uow.commit(CTX)

    assert changes == {"uow_tally": {"count": 3, "doubled": 6}}
    assert bus.published == [
        EntityChanged(
            namespace="uow_tally",
            key="sess-1",
            scope="session",
            changes={"count": 3, "doubled": 6},
            session_id="sess-1",
            origin_tab="tab-1",
            origin_session="sess-1",
        )
    ]
    assert seen_in_store == [3]
    assert repo.log[: repo.log.index("commit") + 1] == ["begin", "get", "save", "commit"]


async def test_unchanged_entity_publishes_nothing():
    repo, bus = FakeRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        await uow.load(Tally, "s")
        assert await uow.commit(CTX) == {}
    assert bus.published == []


async def test_global_change_carries_no_session():
    repo, bus = FakeRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        board = await uow.load(Board, "global")
        board.title = "Hello"
        await uow.commit(CTX)
    [change] = bus.published
    assert (change.scope, change.key, change.session_id) == ("global", "global", None)


async def test_exception_rolls_back_and_publishes_nothing():
    repo, bus = FakeRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "s")
        tally.count = 1
        await uow.commit(CTX)

    with pytest.raises(RuntimeError):
        async with UnitOfWork(repo, bus) as uow:
            tally = await uow.load(Tally, "s")
            tally.count = 99
            raise RuntimeError("event failed")

    stored = repo.stored(Tally, "s")
    assert stored is not None and stored.count == 1
    assert len(bus.published) == 1
    assert repo.log[-1] == "rollback"


async def test_in_place_mutation_to_an_invalid_value_is_caught_at_commit():
    repo, bus = FakeRepository(), RecordingBus()
    with pytest.raises(ValidationFailed) as failed:
        async with UnitOfWork(repo, bus) as uow:
            tally = await uow.load(Tally, "s")
            tally.items.append("not a number")  # type: ignore[arg-type]
            await uow.commit(CTX)
    assert list(failed.value.errors) == ["items.0"]
    assert repo.stored(Tally, "s") is None
    assert bus.published == []


async def test_in_place_mutation_is_coerced_at_commit():
    repo, bus = FakeRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "s")
        tally.items.append("5")  # type: ignore[arg-type]
        changes = await uow.commit(CTX)
    assert changes == {"uow_tally": {"items": [5]}}
    stored = repo.stored(Tally, "s")
    assert stored is not None and stored.items == [5]


async def test_invalid_in_place_change_of_a_server_only_field_is_caught():
    repo, bus = FakeRepository(), RecordingBus()
    with pytest.raises(ValidationFailed):
        async with UnitOfWork(repo, bus) as uow:
            tally = await uow.load(Tally, "s")
            tally.audit.append(42)  # type: ignore[arg-type]
            await uow.commit(CTX)
    assert repo.stored(Tally, "s") is None


async def test_server_only_change_is_saved_but_not_published():
    repo, bus = FakeRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "s")
        tally.audit = ["logged in"]
        assert await uow.commit(CTX) == {}
    stored = repo.stored(Tally, "s")
    assert stored is not None and stored.audit == ["logged in"]
    assert bus.published == []


async def test_domain_events_are_published_after_the_change_and_only_on_commit():
    repo, bus = FakeRepository(), RecordingBus()
    with pytest.raises(RuntimeError):
        async with UnitOfWork(repo, bus) as uow:
            tally = await uow.load(Tally, "s")
            tally.emit(Milestone(0))
            raise RuntimeError("abandon")
    assert bus.published == []

    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "s")
        tally.count = 10
        tally.emit(Milestone(10))
        await uow.commit(CTX)
    assert [type(e) for e in bus.published] == [EntityChanged, Milestone]


async def test_repeated_commits_report_only_new_changes():
    repo, bus = MemoryRepository(), RecordingBus()
    async with UnitOfWork(repo, bus) as uow:
        tally = await uow.load(Tally, "s")
        tally.count = 1
        assert await uow.commit(CTX) == {"uow_tally": {"count": 1, "doubled": 2}}
        tally.items = [7]
        assert await uow.commit(CTX) == {"uow_tally": {"items": [7]}}
    stored = await repo.get(Tally, "s")
    assert stored is not None
    assert (stored.count, stored.items, stored._sm_version) == (1, [7], 2)


async def test_load_of_a_missing_entity_gives_defaults_with_its_key():
    async with UnitOfWork(MemoryRepository(), RecordingBus()) as uow:
        tally = await uow.load(Tally, "fresh")
    assert tally._sm_key == "fresh"
    assert tally.public_state() == {"count": 0, "items": [], "doubled": 0}


# --- several stores in one event: prepare, then commit in order --------------------------------


class InSql(Entity):
    model_config = {"namespace": "uow_in_sql"}
    n: int = 0


class InRedis(Entity):
    model_config = {"namespace": "uow_in_redis"}
    n: int = 0

    @event
    async def bump_everything(self) -> None:
        self.n += 1
        for cls in (InSql, InMemory, InOtherRedis):
            (await cls.records.get("s")).n += 1  # type: ignore[union-attr]


class InMemory(Entity):
    model_config = {"namespace": "uow_in_memory"}
    n: int = 0


class InOtherRedis(Entity):
    model_config = {"namespace": "uow_in_other_redis"}
    n: int = 0


class ReadOnly(Entity):
    model_config = {"namespace": "uow_read_only"}
    n: int = 0


class Stores:
    """One fake per store, all writing to one journal (``"<store>.<call>"``)."""

    def __init__(self) -> None:
        self.journal: list[str] = []
        self.sql = FakeRepository("sql", self.journal)
        self.redis = FakeDecidingRepository("redis", self.journal)
        self.other_redis = FakeDecidingRepository("other_redis", self.journal)
        self.memory = FakeLocalRepository("memory", self.journal)
        self.read_only = FakeRepository("read_only", self.journal)
        self.of = {InSql: self.sql, InRedis: self.redis, InOtherRedis: self.other_redis,
                   InMemory: self.memory, ReadOnly: self.read_only}

    def unit(self, bus: RecordingBus) -> UnitOfWork:
        return UnitOfWork(lambda cls: self.of[cls], bus)

    def calls(self, call: str) -> list[str]:
        return [entry.split(".")[0] for entry in self.journal if entry.endswith(f".{call}")]

    def counts(self) -> dict[str, int | None]:
        return {name: (found.n if (found := repo.stored(cls, "s")) is not None else None)
                for cls, repo in self.of.items() for name in [repo.name]}


async def change(uow: UnitOfWork, *classes: type[Entity]) -> None:
    """Read ``ReadOnly``, then load each of ``classes`` and bump its counter."""
    await uow.load(ReadOnly, "s")
    for cls in classes:
        entity = await uow.load(cls, "s")
        entity.n += 1  # type: ignore[attr-defined]


async def test_one_store_written_is_committed_without_prepare():
    stores, bus = Stores(), RecordingBus()
    async with stores.unit(bus) as uow:
        await change(uow, InMemory)
        await uow.commit(CTX)
    assert stores.calls("prepare") == []
    assert stores.calls("commit") == ["read_only", "memory"]
    assert stores.counts()["memory"] == 1


async def test_stores_written_are_prepared_then_committed_the_deciding_first_memory_last():
    stores, bus = Stores(), RecordingBus()
    async with stores.unit(bus) as uow:
        await change(uow, InMemory, InSql, InRedis)
        await uow.commit(CTX)
    assert stores.calls("prepare") == ["memory", "sql", "redis"]
    assert stores.journal.index("redis.prepare") < stores.journal.index("read_only.commit")
    assert stores.calls("commit") == ["read_only", "redis", "sql", "memory"]
    assert stores.calls("rollback") == []
    assert stores.counts() == {"sql": 1, "redis": 1, "other_redis": None, "memory": 1, "read_only": None}
    assert sorted(fact.namespace for fact in bus.published) == ["uow_in_memory", "uow_in_redis", "uow_in_sql"]


@pytest.mark.parametrize("refusal", [ConcurrencyError("stale"), ValidationFailed({"name": "taken"})])
async def test_a_refusal_at_prepare_rolls_every_store_back_and_publishes_nothing(refusal):
    stores, bus = Stores(), RecordingBus()
    stores.sql.failures["prepare"] = refusal
    with pytest.raises(type(refusal)):
        async with stores.unit(bus) as uow:
            await change(uow, InMemory, InSql, InRedis)
            await uow.commit(CTX)
    assert stores.calls("commit") == []
    assert sorted(stores.calls("rollback")) == ["memory", "read_only", "redis", "sql"]
    assert set(stores.counts().values()) == {None}
    assert bus.published == []


async def test_a_refusal_by_the_store_deciding_at_commit_leaves_nothing_saved():
    stores, bus = Stores(), RecordingBus()
    stores.redis.failures["commit"] = ConcurrencyError("changed meanwhile in Redis")
    with pytest.raises(ConcurrencyError):  # nothing is durable: the event may run again
        async with stores.unit(bus) as uow:
            await change(uow, InMemory, InSql, InRedis)
            await uow.commit(CTX)
    assert stores.calls("commit") == ["read_only", "redis"]
    assert sorted(stores.calls("rollback")) == ["memory", "redis", "sql"]
    assert set(stores.counts().values()) == {None}
    assert bus.published == []


async def test_an_outage_of_the_first_store_to_commit_leaves_nothing_saved():
    stores, bus = Stores(), RecordingBus()
    stores.sql.failures["commit"] = StoreUnavailable("the database cannot be reached")
    with pytest.raises(StoreUnavailable) as failed:
        async with stores.unit(bus) as uow:
            await change(uow, InMemory, InSql)
            await uow.commit(CTX)
    assert not isinstance(failed.value, CommitIncomplete)
    assert stores.calls("commit") == ["read_only", "sql"]
    assert sorted(stores.calls("rollback")) == ["memory", "sql"]
    assert set(stores.counts().values()) == {None}
    assert bus.published == []


async def test_a_failure_after_another_store_committed_says_so_and_publishes_only_what_was_saved(caplog):
    stores, bus = Stores(), RecordingBus()
    stores.sql.failures["commit"] = StoreUnavailable("the database cannot be reached")
    with caplog.at_level(logging.ERROR, "starmodel"), pytest.raises(CommitIncomplete) as failed:
        async with stores.unit(bus) as uow:
            await change(uow, InMemory, InSql, InRedis)
            await uow.commit(CTX)
    assert failed.value.status_code == 503 and "partly saved" in str(failed.value)
    assert stores.calls("commit") == ["read_only", "redis", "sql"]
    assert sorted(stores.calls("rollback")) == ["memory", "sql"]  # memory is not applied
    assert {name for name, n in stores.counts().items() if n is not None} == {"redis"}
    assert [fact.namespace for fact in bus.published] == ["uow_in_redis"]
    [record] = [r for r in caplog.records if "partly saved" in r.getMessage()]
    assert "FakeDecidingRepository committed" in record.getMessage()
    assert "the database cannot be reached" in record.getMessage()


async def test_a_second_deciding_store_refusing_after_the_first_committed_is_not_re_run():
    stores, bus = Stores(), RecordingBus()
    for cls in (InSql, InMemory, InOtherRedis):  # the records the event changes
        stores.of[cls].committed[(cls.namespace(), "s")] = (cls(), 1)
    stores.other_redis.failures["commit"] = ConcurrencyError("changed meanwhile in the other Redis")
    dispatcher = Dispatcher(lambda cls: stores.unit(bus), read_json=json.loads, retries=5)
    with pytest.raises(CommitIncomplete):
        await dispatcher.dispatch(InRedis, InRedis.events()["bump_everything"], CTX, {})
    assert stores.calls("prepare") == ["redis", "sql", "memory", "other_redis"]
    assert stores.calls("commit") == ["redis", "other_redis"]
    assert stores.calls("begin") == ["redis", "sql", "memory", "other_redis"]  # run once only
    assert stores.redis.stored(InRedis, "sess-1").n == 1  # type: ignore[union-attr]
    for cls in (InSql, InMemory, InOtherRedis):
        assert stores.of[cls].stored(cls, "s").n == 0  # type: ignore[union-attr]
    assert [fact.namespace for fact in bus.published] == ["uow_in_redis"]


async def test_a_rollback_cancelled_midway_still_rolls_back_the_other_stores():
    stores, bus = Stores(), RecordingBus()
    stores.redis.failures["commit"] = StoreUnavailable("Redis cannot be reached")
    stores.redis.failures["rollback"] = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        async with stores.unit(bus) as uow:
            await change(uow, InRedis, InMemory)
            await uow.commit(CTX)
    assert sorted(stores.calls("rollback")) == ["memory", "redis"]  # memory released all the same

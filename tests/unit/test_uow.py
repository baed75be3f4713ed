"""UnitOfWork: validate, save, commit, then publish; roll back on any error."""

import pytest
from fakes import FakeRepository, RecordingBus

from starmodel import (
    CallContext,
    DomainEvent,
    Entity,
    EntityChanged,
    ServerOnly,
    ValidationFailed,
    computed,
)
from starmodel.adapters.persistence.memory import MemoryRepository
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

"""The event journal on real stores (a SQLite file, PostgreSQL, Redis, memory): every
committed event makes exactly one entry, in commit order; refused and failing events make
none; undo restores the values before, is journaled, and is refused when a later event
changed the same fields; retention prunes old entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import Field

from starmodel import Entity, StarModel, StateStore, event
from starmodel.core.context import CallContext
from starmodel.core.errors import StarModelError
from starmodel.core.journal import JournalEntry, UndoRefused
from starmodel.testing import EventClient

pytestmark = pytest.mark.asyncio


def nobody(ctx: CallContext) -> bool:
    return False


class Tally(Entity):
    """Fields and events shared by the journaled entities below (one per store)."""

    title: str = ""
    count: int = 0
    note: str = ""
    model_config = {"abstract": True}  # type: ignore[typeddict-unknown-key]

    @event
    def add(self, n: int = 1) -> None:
        self.count += n

    @event
    def rename(self, title: str) -> None:
        self.title = title

    @event
    def annotate(self, note: str) -> None:
        self.note = note

    @event
    def fail(self) -> None:
        self.count += 100
        raise RuntimeError("the event fails after changing the record")

    @event(allow=nobody)
    def forbidden(self) -> None:
        self.count += 1000


class Ledger(Tally, table=True):
    id: int | None = Field(default=None, primary_key=True)
    model_config = {"journal": True, "namespace": "j_ledger"}  # type: ignore[typeddict-unknown-key]


class MemoryTally(Tally):
    model_config = {"journal": True, "scope": "global", "namespace": "j_memory_tally"}  # type: ignore[typeddict-unknown-key]


class RedisTally(Tally):
    model_config = {  # type: ignore[typeddict-unknown-key]
        "journal": True, "scope": "global", "store": StateStore.SERVER_REDIS, "namespace": "j_redis_tally",
    }


class Kept(Tally):
    model_config = {"journal": {"keep": 5}, "scope": "global", "namespace": "j_kept"}  # type: ignore[typeddict-unknown-key]


class KeptRow(Tally, table=True):
    id: int | None = Field(default=None, primary_key=True)
    model_config = {"journal": {"keep": 5}, "namespace": "j_kept_row"}  # type: ignore[typeddict-unknown-key]


STORES = ["sqlite", "postgresql", "memory", "redis"]


class Setup:
    """One app on one store, and the instance its tests work on."""

    def __init__(self, sm: StarModel, entity_cls: type[Entity], key: str) -> None:
        self.sm, self.entity_cls, self.key = sm, entity_cls, key

    async def call(self, name: str, **params: Any) -> list[Any]:
        key = self.key if self.entity_cls.options().scope == "id" else None
        return await self.sm.call(self.entity_cls, name, key=key, **params)

    async def history(self, limit: int = 1000) -> list[JournalEntry]:
        return await self.sm.journal.history(self.entity_cls, self.key, limit=limit)

    async def state(self) -> Any:
        async with self.sm.dispatcher.uow_factory(self.entity_cls) as uow:
            return await uow.load(self.entity_cls, self.key)


@pytest.fixture(params=STORES)
async def setup(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    store = request.param
    options: dict[str, Any] = {"secret_key": "journal-tests", "migrations_dir": str(tmp_path / "none")}
    if store == "sqlite":
        options["database_url"] = f"sqlite:///{tmp_path / 'journal.db'}"
    elif store == "postgresql":
        options["database_url"] = request.getfixturevalue("postgres").url
    elif store == "redis":
        options["redis_url"] = request.getfixturevalue("redis_url")
        options["redis_prefix"] = request.getfixturevalue("redis_prefix")
    entity_cls = {"memory": MemoryTally, "redis": RedisTally}.get(store, Ledger)
    sm = StarModel(entities=[entity_cls, Kept, KeptRow], **options)
    async with EventClient(sm):
        key = "global"
        if entity_cls is Ledger:
            async with sm.dispatcher.uow_factory(Ledger) as uow:
                record = uow.add(Ledger(title="first"))
                await uow.commit(CallContext(session_id="server"))
            key = record.record_key() or ""
        yield Setup(sm, entity_cls, key)


def events_of(entries: list[JournalEntry], *names: str) -> list[JournalEntry]:
    return [entry for entry in entries if entry.event in names]


async def test_200_concurrent_events_make_200_entries_in_commit_order(setup: Setup) -> None:
    await asyncio.gather(*(setup.call("add", n=1) for _ in range(200)))

    entries = events_of(await setup.history(), "add")
    assert len(entries) == 200
    assert (await setup.state()).count == 200
    in_order = sorted(entries, key=lambda e: e.version)
    assert entries == in_order[::-1]  # newest first
    versions = [entry.version for entry in in_order]
    assert versions == list(range(versions[0], versions[0] + 200))  # one entry per commit
    assert [entry.changes["count"] for entry in in_order] == [[i, i + 1] for i in range(200)]
    ids = [int(entry.id) for entry in in_order]
    assert len(set(ids)) == 200
    if setup.entity_cls is Ledger:  # the table's ids follow the record's commits
        assert ids == sorted(ids)
    assert all(entry.params == {"n": 1} and entry.actor == "server" for entry in entries)


async def test_refused_and_failing_events_write_no_entry(setup: Setup) -> None:
    before = await setup.history()
    with pytest.raises(RuntimeError):
        await setup.call("fail")
    with pytest.raises(StarModelError) as refused:
        await setup.call("forbidden")
    assert refused.value.status_code == 403
    with pytest.raises(StarModelError) as invalid:
        await setup.call("add", n="many")
    assert invalid.value.status_code == 422
    await setup.call("add", n=0)  # committed, but nothing changed: nothing to journal
    assert await setup.history() == before
    assert (await setup.state()).count == 0


async def test_undo_puts_the_values_back_and_is_journaled(setup: Setup) -> None:
    await setup.call("rename", title="second")
    await setup.call("annotate", note="remember")
    await setup.call("rename", title="third")

    undone = await setup.sm.journal.undo(setup.entity_cls, setup.key)
    assert undone.event == "rename" and undone.changes == {"title": ["second", "third"]}
    state = await setup.state()
    assert (state.title, state.note) == ("second", "remember")

    latest = (await setup.history())[0]
    assert latest.event == "undo" and latest.undoes == undone.id
    assert latest.changes == {"title": ["third", "second"]}

    # the next undo goes one further back (the undo and what it undid are skipped)
    again = await setup.sm.journal.undo(setup.entity_cls, setup.key)
    assert again.event == "annotate"
    assert (await setup.state()).note == ""
    with pytest.raises(UndoRefused, match="undone already"):
        await setup.sm.journal.undo(setup.entity_cls, setup.key, undone.id)


async def test_undo_is_refused_when_a_later_event_changed_the_same_fields(setup: Setup) -> None:
    await setup.call("rename", title="second")
    await setup.call("annotate", note="remember")
    await setup.call("rename", title="third")
    first_rename = events_of(await setup.history(), "rename")[-1]
    annotate = events_of(await setup.history(), "annotate")[0]

    with pytest.raises(UndoRefused) as refused:
        await setup.sm.journal.undo(setup.entity_cls, setup.key, first_rename.id)
    assert refused.value.status_code == 409
    assert "title changed later, by rename" in str(refused.value)
    assert (await setup.state()).title == "third"  # nothing changed

    # an earlier change of other fields can be undone on its own
    await setup.sm.journal.undo(setup.entity_cls, setup.key, annotate.id)
    state = await setup.state()
    assert (state.title, state.note) == ("third", "")

    # once the later rename is undone, the first one can be too
    await setup.sm.journal.undo(setup.entity_cls, setup.key)
    await setup.sm.journal.undo(setup.entity_cls, setup.key, first_rename.id)
    assert (await setup.state()).title == ("first" if setup.entity_cls is Ledger else "")


async def test_retention_keeps_the_newest_entries_per_record(setup: Setup) -> None:
    entity_cls = KeptRow if setup.entity_cls is Ledger else Kept
    key = "global"
    if entity_cls is KeptRow:
        async with setup.sm.dispatcher.uow_factory(KeptRow) as uow:
            record = uow.add(KeptRow())
            await uow.commit(CallContext(session_id="server"))
        key = record.record_key() or ""
    for _ in range(12):
        await setup.sm.call(entity_cls, "add", key=key if entity_cls is KeptRow else None, n=1)
    entries = await setup.sm.journal.history(entity_cls, key, limit=100)
    assert [entry.changes["count"][1] for entry in entries] == [12, 11, 10, 9, 8]


class Progress(Entity):
    """A streaming and a background event: one entry per committed stretch."""

    done: int = 0
    model_config = {"journal": True, "scope": "global", "namespace": "j_progress"}  # type: ignore[typeddict-unknown-key]

    @event
    async def run(self, steps: int = 3) -> Any:
        for _ in range(steps):
            self.done += 1
            yield None

    @event(background=True)
    async def run_later(self, steps: int = 3) -> Any:
        for _ in range(steps):
            self.done += 1
            await asyncio.sleep(0.01)


async def test_streaming_and_background_events_journal_each_committed_stretch(tmp_path: Any) -> None:
    sm = StarModel(entities=[Progress], secret_key="journal-tests",
                   database_url=f"sqlite:///{tmp_path / 'j.db'}", migrations_dir=str(tmp_path / "none"))
    async with EventClient(sm) as client:
        assert (await client.call(Progress.run, steps=3)).ok
        assert (await client.call(Progress.run_later, steps=2)).ok
        await client.wait_for_runs()
        entries = await sm.journal.history(Progress, "global")
    assert [(e.event, e.changes["done"]) for e in reversed(entries)] == [
        ("run", [0, 1]), ("run", [1, 2]), ("run", [2, 3]), ("run_later", [3, 4]), ("run_later", [4, 5]),
    ]

"""The journal's pieces with fakes: the setting, entries (what they keep and hide), the unit of
work's seam (entries handed to a store's transaction before its commit, else appended to the
app's journal after it; none for a rolled-back unit), the memory journal's retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from starmodel import ConfigurationError, Entity, ServerOnly
from starmodel.adapters.driven.journal.memory import MemoryJournal
from starmodel.app.uow import UnitOfWork
from starmodel.core.context import CallContext
from starmodel.core.journal import (
    HIDDEN,
    Doing,
    JournalEntry,
    JournalSettings,
    actor_of,
    journal_key,
)
from tests.unit.fakes import FakeRepository, RecordingBus

CTX = CallContext(session_id="session-one")


class Account(Entity):
    owner: str = ""
    balance: int = 0
    secret: ServerOnly[str] = ""
    model_config = {"scope": "global", "journal": {"keep": 3}, "namespace": "ju_account"}  # type: ignore[typeddict-unknown-key]


class Personal(Entity):
    note: str = ""
    model_config = {"journal": True, "namespace": "ju_personal"}  # type: ignore[typeddict-unknown-key]


class Quiet(Entity):
    note: str = ""
    model_config = {"scope": "global", "namespace": "ju_quiet"}  # type: ignore[typeddict-unknown-key]


class RecordingRepository(FakeRepository):
    """A store that keeps journal entries in its own transaction, as the SQL store does."""

    def __init__(self) -> None:
        super().__init__("sql")
        self.recorded: list[JournalEntry] = []
        self.staged_entries: list[JournalEntry] = []

    async def record(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> bool:
        self._note("record")
        self.staged_entries.extend(entries)
        return True

    async def commit(self) -> None:
        await super().commit()
        self.recorded.extend(self.staged_entries)
        self.staged_entries.clear()

    async def rollback(self) -> None:
        await super().rollback()
        self.staged_entries.clear()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("yes", "journal must be True or a dict"),
        ({"keep": 0}, "keep must be a whole number"),
        ({"keep": True}, "keep must be a whole number"),
        ({"max_age": -1}, "max_age must be a positive number"),
        ({"forever": 1}, "journal must be True or a dict"),
    ],
)
def test_a_wrong_journal_setting_is_refused_with_the_reason(raw: Any, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        type("Wrong", (Entity,), {"__annotations__": {"n": int}, "n": 0, "model_config": {"journal": raw}})


def test_the_setting_is_read_and_described() -> None:
    assert Account.options().journal == JournalSettings(keep=3)
    assert Personal.options().journal == JournalSettings()
    assert Quiet.options().journal is None
    assert JournalSettings(keep=3, max_age=60).describe() == "on (keep 3 per record, for 60s)"


def test_session_keys_and_actors_never_show_a_session_id() -> None:
    assert journal_key(Personal, "session-one").startswith("s-") and "session-one" not in journal_key(
        Personal, "session-one"
    )
    assert journal_key(Account, "global") == "global"
    assert actor_of(CTX).startswith("session ") and "session-one" not in actor_of(CTX)
    assert actor_of(CallContext(session_id="x", user=type("U", (), {"email": "a@b.c"})())) == "a@b.c"
    assert actor_of(CallContext(session_id="server")) == "server"


def test_an_entry_round_trips_through_json() -> None:
    entry = JournalEntry(entity="e", key="1", version=2, event="go", actor="me", id="7", undoes="3",
                         at=datetime(2026, 1, 2, tzinfo=UTC), changes={"n": [1, 2]}, params={"x": [1]})
    assert JournalEntry.from_dict(entry.to_dict()) == entry


async def test_the_unit_of_work_hands_entries_to_a_store_that_keeps_them_before_its_commit() -> None:
    repository = RecordingRepository()
    journal = MemoryJournal()
    uow = UnitOfWork(repository, RecordingBus(), journal=lambda cls: journal)
    async with uow:
        account = await uow.load(Account, "global")
        uow.doing = Doing("deposit", {"amount": 5}, "ju_account")
        account.balance = 5
        account.secret = "s3cret"
        await uow.commit(CTX)
    assert repository.log == ["begin", "get", "save", "record", "commit"]
    [entry] = repository.recorded
    assert (entry.event, entry.params, entry.kind) == ("deposit", {"amount": 5}, "change")
    assert entry.changes == {"balance": [0, 5], "secret": [HIDDEN, HIDDEN]}  # never the value
    assert await journal.history("ju_account", "global") == []  # the store kept it


async def test_entries_of_other_stores_are_appended_after_the_commit_and_never_on_rollback() -> None:
    repository = FakeRepository("memory")
    journal = MemoryJournal()
    uow = UnitOfWork(repository, RecordingBus(), journal=lambda cls: journal)
    async with uow:
        (await uow.load(Personal, "session-one")).note = "kept"
        (await uow.load(Quiet, "global")).note = "not journaled"
        await uow.commit(CTX)
    [entry] = await journal.history("ju_personal", journal_key(Personal, "session-one"))
    assert entry.changes == {"note": ["", "kept"]} and entry.event == "(update)"

    repository.failures["commit"] = RuntimeError("the store refuses")
    failing = UnitOfWork(repository, RecordingBus(), journal=lambda cls: journal)
    with pytest.raises(RuntimeError):
        async with failing:
            (await failing.load(Personal, "session-one")).note = "lost"
            await failing.commit(CTX)
    assert len(await journal.history("ju_personal", journal_key(Personal, "session-one"))) == 1


async def test_the_memory_journal_prunes_by_count_and_age() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC).timestamp()]
    journal = MemoryJournal(clock=lambda: now[0])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    settings = {"e": JournalSettings(keep=3, max_age=60)}
    for version in range(1, 6):
        entry = JournalEntry(entity="e", key="k", version=version, event="go", actor="me",
                             at=start + timedelta(seconds=version), changes={"n": [version - 1, version]})
        await journal.append([entry], settings)
    assert [e.version for e in await journal.history("e", "k")] == [5, 4, 3]
    now[0] += 63.5  # versions 3 (at +3s) is older than 60 seconds now
    late = JournalEntry(entity="e", key="k", version=6, event="go", actor="me",
                        at=start + timedelta(seconds=63), changes={"n": [5, 6]})
    await journal.append([late], settings)
    assert [e.version for e in await journal.history("e", "k")] == [6, 5, 4]
    assert [e.version for e in await journal.history("e", "k", newer_than=4)] == [6, 5]
    assert (await journal.find("e", (await journal.history("e", "k"))[0].id)) is not None

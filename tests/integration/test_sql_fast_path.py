"""A plain event on one SQL record takes the short way on PostgreSQL (``sql_fast``): one
unlocked ``SELECT`` and one version-checked ``UPDATE ... RETURNING``, each committed on its
own, or the ``UPDATE`` alone when the event before it on the record handed its row on. These
tests hold it to the unit of work's promises: no lost and no doubled update under many
concurrent calls (two app instances sharing the database, as two processes would), a lost
race re-run (or 409 once the retries are spent), refused values answered as before, and the
general path (one transaction, ``FOR UPDATE``) as soon as the event does more.

What the app sends to the database is recorded at the driver (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from integration_support import field_errors, post_event, signals_of
from sqlmodel import Field

from starmodel import Entity, EntityChanged, StarModel, event

OUTSIDE: list[Callable[[int], Awaitable[None]]] = []
"""What ``Tally.bump_with_outside_writer`` awaits before changing the record (a writer of
another process, set by the test)."""


class Tally(Entity, table=True):
    model_config = {"table_name": "fp_tally", "namespace": "fp_tally"}
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=40, unique=True)
    count: int = 0

    @event
    def bump(self) -> None:
        self.count += 1

    @event
    def rename(self, name: str) -> None:
        self.name = name

    @event
    def look(self) -> None:
        """Changes nothing."""

    @event
    async def bump_with_outside_writer(self) -> None:
        for write in OUTSIDE:
            await write(self.id or 0)
        self.count += 1

    @event
    async def add_from(self, other: int) -> None:
        """Reads another record too: the general path."""
        for write in OUTSIDE:
            await write(self.id or 0)
        source = await Tally.records.get(other)
        self.count += source.count

    @event
    def create(cls, name: str) -> None:
        cls.records.add(Tally(name=name))


class Note(Entity, table=True):
    """A private record: other sessions get 404 for its events."""

    model_config = {"table_name": "fp_note", "namespace": "fp_note", "private": True}
    id: int | None = Field(default=None, primary_key=True)
    hits: int = 0

    @event
    def hit(self) -> None:
        self.hits += 1

    @event
    def create(cls) -> None:
        cls.records.add(Note())


class Moves(Entity):
    """A memory entity written by the same event as a SQL record."""

    model_config = {"namespace": "fp_moves", "scope": "global", "per_process": True}
    n: int = 0


class Mover(Entity, table=True):
    model_config = {"table_name": "fp_mover", "namespace": "fp_mover"}
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0

    @event
    async def move(self, fail: bool = False) -> None:
        moves = await Moves.records.find("global")
        if moves is None:
            moves = Moves()
            moves._sm_key = "global"
            Moves.records.add(moves)
        self.n += 1
        moves.n += 1
        if fail:
            raise ValueError("not this time")

    @event
    def create(cls) -> None:
        cls.records.add(Mover())


ENTITIES = [Tally, Note, Moves, Mover]


# --- fixtures ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def started(url: str, tmp_path: Any, **options: Any) -> AsyncIterator[StarModel]:
    sm = StarModel(
        entities=ENTITIES, secret_key="fast-path", database_url=url,
        migrations_dir=str(tmp_path / "no-migrations"), **options,
    )  # fmt: skip
    async with sm.app.router.lifespan_context(sm.app):
        yield sm


def browser(sm: StarModel) -> httpx.AsyncClient:
    """A browser of its own (its own session cookie), talking to the app in-process."""
    transport = httpx.ASGITransport(app=sm.app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30)


@pytest.fixture(autouse=True)
def _no_outside_writer() -> Iterator[None]:
    yield
    OUTSIDE.clear()


class Statements:
    """The SQL the app's asyncpg connections send, recorded while ``recording``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.recording = False

    def of(self, word: str) -> list[str]:
        return [sql for sql in self.sent if sql.split()[0].upper() == word]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    seen = Statements()

    def spy(cls: type, name: str, query_of: Callable[[Any, tuple[Any, ...]], str]) -> None:
        original = getattr(cls, name)

        async def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if seen.recording:
                seen.sent.append(" ".join(query_of(self, args).split()))
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, recorded)

    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        spy(asyncpg.Connection, name, lambda _, args: str(args[0]) if args else "")
    for name in ("fetch", "fetchrow"):
        spy(asyncpg.prepared_stmt.PreparedStatement, name, lambda stmt, _: stmt.get_query())
    return seen


async def stored(url: str, table: str, key: int) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", key)
    finally:
        await conn.close()


async def new_tally(client: httpx.AsyncClient, name: str) -> None:
    assert (await post_event(client, "/fp_tally/create", name=name)).status_code == 200


# --- what is sent --------------------------------------------------------------------------------


async def test_a_plain_event_on_one_record_sends_a_read_and_one_update_and_no_begin_or_commit(
    postgres, tmp_path, statements
):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        statements.recording = True
        answer = await post_event(client, "/fp_tally/bump", _key=1)
        statements.recording = False
    assert answer.status_code == 200
    assert signals_of(answer.text) == [{"fp_tally": {"1": {"count": 1}}}]
    assert [sql.split()[0] for sql in statements.sent] == ["SELECT", "UPDATE"]
    assert "FOR UPDATE" not in statements.sent[0]
    assert "sm_version" in statements.sent[1] and "RETURNING" in statements.sent[1]
    assert (await stored(postgres.url, "fp_tally", 1))["count"] == 1


async def test_events_queued_on_one_record_run_from_the_row_handed_on_and_are_stored_together(
    postgres, tmp_path, statements
):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        statements.recording = True
        answers = await asyncio.gather(*(post_event(client, "/fp_tally/bump", _key=1) for _ in range(40)))
        statements.recording = False
    assert all(a.status_code == 200 for a in answers)
    counts = sorted(signals_of(a.text)[0]["fp_tally"]["1"]["count"] for a in answers)
    assert counts == list(range(1, 41))  # each answer saw its own increment, once
    assert len(statements.of("SELECT")) == 1  # the others started from the row handed on
    assert 1 <= len(statements.of("UPDATE")) < 40  # those queued meanwhile went out as one
    assert not statements.of("BEGIN") and not statements.of("COMMIT")
    row = await stored(postgres.url, "fp_tally", 1)
    assert row["count"] == 40 and row["sm_version"] > len(statements.of("UPDATE"))


async def test_changes_queued_on_one_record_are_published_in_the_order_they_were_made(postgres, tmp_path):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        seen: list[int] = []

        async def record(fact: EntityChanged) -> None:
            if fact.namespace == "fp_tally" and not fact.created:
                seen.append(fact.changes["count"])

        sm.subscribe(EntityChanged, record)
        await new_tally(client, "a")
        answers = await asyncio.gather(*(post_event(client, "/fp_tally/bump", _key=1) for _ in range(60)))
    assert all(a.status_code == 200 for a in answers)
    assert seen == list(range(1, 61))


async def test_an_event_that_changes_nothing_writes_nothing(postgres, tmp_path, statements):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        statements.recording = True
        answer = await post_event(client, "/fp_tally/look", _key=1)
        statements.recording = False
    assert answer.status_code == 204
    assert [sql.split()[0] for sql in statements.sent] == ["SELECT"]


async def test_an_event_reading_another_record_takes_the_general_path(postgres, tmp_path, statements):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        await new_tally(client, "b")
        for _ in range(3):
            await post_event(client, "/fp_tally/bump", _key=2)
        statements.recording = True
        answer = await post_event(client, "/fp_tally/add_from", _key=1, other=2)
        statements.recording = False
    assert answer.status_code == 200
    assert signals_of(answer.text)[0]["fp_tally"]["1"] == {"count": 3}
    sent = statements.sent
    assert sent[0].startswith("SELECT") and "FOR UPDATE" not in sent[0]  # the record, unlocked
    assert "BEGIN" in sent[1]  # then a transaction, as soon as the event reads another record
    locked = [sql for sql in sent if "FOR UPDATE" in sql]
    assert len(locked) == 2  # the record read again (its version checked), and the other one
    assert sent[-1].startswith("COMMIT")


# --- no lost, no doubled update ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_many_concurrent_calls_from_two_apps_lose_no_update_and_apply_none_twice(
    backend, tmp_path, request
):
    """Two app instances on one database (two processes, as far as turns go): every fifth call
    reads a record that does not exist besides (404, changes nothing)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("postgres").url
    calls, rows = 240, 3
    expected = dict.fromkeys(range(1, rows + 1), 0)
    gate = asyncio.Semaphore(24)
    async with (
        started(url, tmp_path) as one, started(url, tmp_path) as two,
        browser(one) as first, browser(two) as second,
    ):  # fmt: skip
        for name in range(rows):
            await new_tally(first, f"t{name}")

        async def call(n: int) -> httpx.Response:
            key = n % rows + 1
            async with gate:
                client = first if n % 2 else second
                if n % 5 == 0:
                    return await post_event(client, "/fp_tally/add_from", _key=key, other=rows + 1)
                expected[key] += 1
                return await post_event(client, "/fp_tally/bump", _key=key)

        answers = await asyncio.gather(*(call(n) for n in range(calls)))
        counts = {}
        for key in expected:  # one more bump each, read back through the app
            answer = await post_event(first, "/fp_tally/bump", _key=key)
            counts[key] = signals_of(answer.text)[0]["fp_tally"][str(key)]["count"] - 1
    assert sum(a.status_code == 200 for a in answers) == sum(expected.values())  # no 409
    assert sum(a.status_code == 404 for a in answers) == calls // 5
    assert counts == expected


# --- lost races ----------------------------------------------------------------------------------


def outside_writer(url: str, times: int | None) -> Callable[[int], Awaitable[None]]:
    """Another process's write to the record (count + 100, version + 1), ``times`` times (None:
    always); it gives up when the record is locked (the event's re-run holds it)."""
    state = {"done": 0}

    async def write(key: int) -> None:
        if times is not None and state["done"] >= times:
            return
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET lock_timeout = '200ms'")
            await conn.execute(
                "UPDATE fp_tally SET count = count + 100, sm_version = sm_version + 1 WHERE id = $1", key
            )
            state["done"] += 1
        except asyncpg.LockNotAvailableError:
            pass
        finally:
            await conn.close()

    return write


async def test_a_write_that_lost_a_race_is_re_run_on_fresh_state(postgres, tmp_path, statements):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        OUTSIDE.append(outside_writer(postgres.url, times=1))
        statements.recording = True
        answer = await post_event(client, "/fp_tally/bump_with_outside_writer", _key=1)
        statements.recording = False
    assert answer.status_code == 200
    assert signals_of(answer.text) == [{"fp_tally": {"1": {"count": 101}}}]  # neither write lost
    row = await stored(postgres.url, "fp_tally", 1)
    assert row["count"] == 101
    assert row["sm_version"] == 1 + 1 + 1  # created, the outside write, the event once
    assert any("FOR UPDATE" in sql for sql in statements.sent)  # the re-run locks the record


async def test_a_record_changed_before_the_event_reads_more_is_re_run(postgres, tmp_path):
    """The unlocked read must still hold when the event goes on to the general path."""
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        await new_tally(client, "b")
        await post_event(client, "/fp_tally/bump", _key=2)
        OUTSIDE.append(outside_writer(postgres.url, times=1))
        answer = await post_event(client, "/fp_tally/add_from", _key=1, other=2)
    assert answer.status_code == 200, answer.text
    assert signals_of(answer.text)[0]["fp_tally"]["1"] == {"count": 101}
    assert (await stored(postgres.url, "fp_tally", 1))["count"] == 101


async def test_a_record_that_keeps_changing_answers_409_once_the_retries_are_spent(postgres, tmp_path):
    async with started(postgres.url, tmp_path, event_retries=1) as sm, browser(sm) as client:
        await new_tally(client, "a")
        OUTSIDE.append(outside_writer(postgres.url, times=None))
        answer = await post_event(client, "/fp_tally/bump_with_outside_writer", _key=1)
    assert answer.status_code == 409
    assert (await stored(postgres.url, "fp_tally", 1))["count"] == 100  # the outside write only


async def test_a_record_deleted_meanwhile_is_not_found_on_the_re_run(postgres, tmp_path):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")

        async def delete(key: int) -> None:
            conn = await asyncpg.connect(postgres.url)
            try:
                await conn.execute("DELETE FROM fp_tally WHERE id = $1", key)
            finally:
                await conn.close()

        OUTSIDE.append(delete)
        answer = await post_event(client, "/fp_tally/bump_with_outside_writer", _key=1)
    assert answer.status_code == 404
    assert await stored(postgres.url, "fp_tally", 1) is None


# --- refusals, privacy, other stores ----------------------------------------------------------


async def test_a_value_the_database_refuses_is_answered_422_and_changes_nothing(postgres, tmp_path):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        await new_tally(client, "a")
        await new_tally(client, "b")
        answer = await post_event(client, "/fp_tally/rename", _key=2, name="a")
        again = await post_event(client, "/fp_tally/bump", _key=2)
    assert answer.status_code == 422
    assert field_errors(answer.text, "fp_tally") == {"name": "This value is already taken"}
    assert again.status_code == 200 and signals_of(again.text) == [{"fp_tally": {"2": {"count": 1}}}]
    row = await stored(postgres.url, "fp_tally", 2)
    assert (row["name"], row["count"], row["sm_version"]) == ("b", 1, 2)


async def test_a_private_record_handed_on_stays_hidden_from_other_sessions(postgres, tmp_path):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as owner, browser(sm) as other:
        assert (await post_event(owner, "/fp_note/create")).status_code == 200
        answers = await asyncio.gather(
            *(post_event(owner if n % 2 else other, "/fp_note/hit", _key=1) for n in range(30))
        )
    assert [a.status_code for a in answers[1::2]] == [200] * 15
    assert [a.status_code for a in answers[0::2]] == [404] * 15
    assert (await stored(postgres.url, "fp_note", 1))["hits"] == 15


async def test_an_event_writing_a_record_and_a_memory_entity_saves_both_or_neither(postgres, tmp_path):
    async with started(postgres.url, tmp_path) as sm, browser(sm) as client:
        assert (await post_event(client, "/fp_mover/create")).status_code == 200
        answers = await asyncio.gather(
            *(post_event(client, "/fp_mover/move", _key=1, fail=n % 3 == 0) for n in range(24))
        )
        moves = signals_of((await post_event(client, "/fp_mover/move", _key=1)).text)
    ok = sum(a.status_code == 200 for a in answers)
    assert ok == 16 and sum(a.status_code == 422 for a in answers) == 8
    assert moves[0]["fp_mover"]["1"] == {"n": ok + 1} and moves[0]["fp_moves"] == {"n": ok + 1}
    assert (await stored(postgres.url, "fp_mover", 1))["n"] == ok + 1

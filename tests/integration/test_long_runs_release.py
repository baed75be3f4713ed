"""A background event holds its entity only between waits: while a 3-step job runs on a shared
entity, plain events of other sessions on that entity answer at once, and nothing is lost on
either side (a global entity in memory or Redis, a SQL record in PostgreSQL; one process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Field

from starmodel import Entity, StarModel, StateStore, event
from starmodel.testing import EventClient

STEP_SECONDS = 0.6
SESSIONS, ROUNDS = 5, 10  # 50 plain events
BOUND = 0.2  # each plain event answers within this, while the job runs


async def job_steps(entity: Any, steps: int):
    for _ in range(steps):
        await asyncio.sleep(STEP_SECONDS)  # nothing held while it sleeps
        entity.clicks += 100  # self is current: the clicks made meanwhile are in it
        entity.steps += 1
        yield None


class MemoryBoard(Entity):
    model_config = {"scope": "global", "namespace": "rel_mem"}
    clicks: int = 0
    steps: int = 0

    @event
    def click(self):
        self.clicks += 1

    @event(background=True)
    async def job(self, steps: int = 3):
        async for _ in job_steps(self, steps):
            yield None


class RedisBoard(Entity):
    model_config = {"scope": "global", "store": StateStore.SERVER_REDIS, "namespace": "rel_redis"}
    clicks: int = 0
    steps: int = 0

    @event
    def click(self):
        self.clicks += 1

    @event(background=True)
    async def job(self, steps: int = 3):
        async for _ in job_steps(self, steps):
            yield None


class SqlBoard(Entity, table=True):
    model_config = {"table_name": "rel_sql_board", "namespace": "rel_sql"}
    id: int | None = Field(default=None, primary_key=True)
    clicks: int = 0
    steps: int = 0

    @event
    def open(cls):
        cls.records.add(SqlBoard(id=1))

    @event
    def click(self):
        self.clicks += 1

    @event(background=True)
    async def job(self, steps: int = 3):
        async for _ in job_steps(self, steps):
            yield None


@pytest.fixture(params=["memory", "postgresql", "redis"])
def app_and_board(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StarModel, type[Entity]]:
    kind = request.param
    options: dict[str, Any] = {"secret_key": "release", "migrations_dir": str(tmp_path / "none")}
    cls: type[Entity]
    if kind == "memory":
        cls = MemoryBoard
    elif kind == "postgresql":
        cls = SqlBoard
        options["database_url"] = request.getfixturevalue("postgres").url
    else:
        cls = RedisBoard
        options["redis_url"] = request.getfixturevalue("redis_url")
        options["redis_prefix"] = request.getfixturevalue("redis_prefix")
    return StarModel(entities=[cls], **options), cls


async def test_plain_events_answer_at_once_while_a_background_job_runs(app_and_board) -> None:
    sm, Board = app_and_board
    key = None
    async with EventClient(sm) as client:
        if Board is SqlBoard:
            assert (await client.call(SqlBoard.open)).status == 200
            key = 1
        started = await client.call(Board.job, _key=key, steps=3)
        assert started.status in (200, 204), started
        sessions = [client.session() for _ in range(SESSIONS)]
        timings: list[float] = []
        during: list[bool] = []

        async def click(session: Any) -> None:
            during.append(bool(sm.dispatcher.running(Board, str(key or "global"), "job")))
            begun = time.perf_counter()
            answer = await session.call(Board.click, _key=key)
            timings.append(time.perf_counter() - begun)
            assert answer.status == 200, answer

        for _ in range(ROUNDS):
            await asyncio.gather(*(click(session) for session in sessions))
            await asyncio.sleep(0.05)
        await client.settle(timeout=10)
        assert all(during), "the clicks must all be made while the job runs"
        assert max(timings) < BOUND, sorted(timings)[-5:]
        final = await (client.record(SqlBoard, 1) if key else client.state(Board))
        assert (final.clicks, final.steps) == (SESSIONS * ROUNDS + 300, 3)

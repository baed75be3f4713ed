"""The app of the two-process long-run tests (``starmodel run tests/integration/long_run_app.py``):
a SQL record and a Redis-stored global entity, each with plain events and a background job.
Its settings come from the environment the test gives it (``DATABASE_URL``, ``REDIS_URL``...).
"""

from __future__ import annotations

import asyncio

from sqlmodel import Field

from starmodel import Entity, StarModel, StateStore, event

STEP_SECONDS = 1.0


class LongSql(Entity, table=True):
    """A shared record: the job adds to the very field the clicks add to."""

    model_config = {"table_name": "long_sql", "namespace": "long_sql"}
    id: int | None = Field(default=None, primary_key=True)
    clicks: int = 0
    steps: int = 0

    @event
    def open(cls):
        cls.records.add(LongSql(id=1))

    @event
    def click(self):
        self.clicks += 1

    @event(background=True)
    async def job(self, steps: int = 3):
        """Count the steps."""
        for _ in range(steps):
            await asyncio.sleep(STEP_SECONDS)
            self.clicks += 100
            self.steps += 1
            yield None


class LongRedis(Entity):
    """A global entity in Redis: the job changes its own fields, the clicks theirs."""

    model_config = {"scope": "global", "store": StateStore.SERVER_REDIS, "namespace": "long_redis"}
    clicks: int = 0
    steps: int = 0

    @event
    def click(self):
        self.clicks += 1

    @event(background=True, exclusive=True, title="The import")
    async def job(self, steps: int = 3):
        for _ in range(steps):
            await asyncio.sleep(STEP_SECONDS)
            self.steps += 1
            yield None


sm = StarModel(entities=[LongSql, LongRedis], title="Long runs")
app = sm.app

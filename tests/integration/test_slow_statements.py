"""A slow statement is not a frozen database: an event waiting for a row lock that another
transaction holds for several store timeouts answers 200 once it gets the lock, and the
database is never reported away meanwhile (the database keeps answering the probes made
while the statement waits). Real PostgreSQL (the shared server, not frozen)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import httpx
from integration_support import post_event, signals_of
from sqlmodel import Field

from starmodel import Entity, StarModel, event

STORE_TIMEOUT = 0.5
HELD = 6 * STORE_TIMEOUT  # how long another transaction holds the row


class LockedTally(Entity, table=True):
    model_config = {"table_name": "locked_tally"}
    id: int | None = Field(default=None, primary_key=True)
    count: int = 0

    @event
    def open(cls) -> None:
        cls.records.add(LockedTally())

    @event
    def bump(self) -> None:
        self.count += 1


async def test_an_event_waiting_for_a_row_lock_for_many_timeouts_is_answered(postgres, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="starmodel.services")
    sm = StarModel(
        entities=[LockedTally], secret_key="slow", database_url=postgres.url, store_timeout=STORE_TIMEOUT,
        migrations_dir=str(tmp_path / "no-migrations"),
    )
    async with sm.app.router.lifespan_context(sm.app):
        transport = httpx.ASGITransport(app=sm.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await post_event(client, "/locked_tally/open")).status_code == 200
            holder = await asyncpg.connect(
                host="127.0.0.1", port=5432, user=postgres.user, database=postgres.database
            )
            lock = holder.transaction()

            async def release_later() -> None:
                await asyncio.sleep(HELD)
                await lock.commit()

            try:
                await lock.start()
                await holder.execute("SELECT * FROM locked_tally WHERE id = 1 FOR UPDATE")
                release = asyncio.create_task(release_later())
                started = time.monotonic()
                answer = await client.post(
                    "/locked_tally/bump", params={"_key": "1"}, headers={"datastar-request": "true"}, json={}
                )
                took = time.monotonic() - started
                await release
            finally:
                await holder.close()
    assert answer.status_code == 200, answer.text
    assert signals_of(answer.text) == [{"locked_tally": {"1": {"count": 1}}}]
    assert took >= HELD - 0.1  # it did wait for the lock, far beyond one timeout
    assert not [r for r in caplog.records if r.name == "starmodel.services"], caplog.text

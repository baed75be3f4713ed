"""The app the frozen-service tests serve (``starmodel run tests/integration/freeze_app.py``):
one entity per store, and one event that needs two stores. Its settings come from the
environment the test gives it (``REDIS_URL``, ``DATABASE_URL``...); the test process never
imports it (its SQL table would join that process's metadata).
"""

from __future__ import annotations

from sqlmodel import Field

from starmodel import Entity, StarModel, StateStore, event


class Stock(Entity):
    """A counter in Redis, shared by everybody."""

    model_config = {"store": StateStore.SERVER_REDIS, "scope": "global"}
    count: int = 0

    @event
    def bump(self) -> None:
        self.count += 1


class Tally(Entity):
    """A counter in this process's memory (``per_process``: kept there even with Redis)."""

    model_config = {"scope": "global", "per_process": True}
    count: int = 0

    @event
    def bump(self) -> None:
        self.count += 1


class Ledger(Entity, table=True):
    """A SQL record (``DATABASE_URL``); its table is created when the app starts."""

    id: int | None = Field(default=None, primary_key=True)
    count: int = 0

    @event
    def open(cls) -> None:
        cls.records.add(Ledger())

    @event
    def bump(self) -> None:
        self.count += 1

    @event
    async def bump_with_stock(self) -> None:
        """Needs the database and Redis: it holds its SQL transaction while it reads Redis."""
        self.count += 1
        stock = await Stock.records.find("global")
        if stock is not None:
            stock.count += 1


sm = StarModel(title="Frozen service tests")
app = sm.app

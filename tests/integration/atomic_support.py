"""What the atomic-event tests build on: a Redis server of their own (to stop mid-commit), the
app of one pair of stores, the deferred foreign key that fails a commit, and reading back
what every store holds.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomic_entities import (
    COUNTERS,
    ClientCounter,
    Fuse,
    JsonShared,
    MemoryShared,
    RedisShared,
    SqlShared,
    Taken,
    shared_key,
)
from redis import asyncio as aioredis
from sm_http import free_port
from sqlalchemy import event as sa_event
from sqlalchemy import text

from starmodel import Entity, EntityChanged, Settings, StarModel

__all__ = ["CALLS", "PAIRS", "OwnRedis", "Pair", "PairApp", "settle"]

CALLS = 50


class OwnRedis:
    """A ``redis-server`` process of the test's own on a free port (keeping nothing on disk),
    stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def _answers(self) -> bool:
        run = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, timeout=5)
        return run.stdout.strip() == b"PONG"

    async def pause_writes(self) -> None:
        """Hold every write (the commit scripts included) until the server is stopped; reads
        still answer. Once this returns, the answers of earlier writes are on their way."""
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass(frozen=True)
class Pair:
    """Two stores one event writes to: the counter it runs on, and a shared counter."""

    counter: str  # a key of COUNTERS
    shared: type[Entity]
    database: str = "sqlite"

    @property
    def id(self) -> str:
        names = {MemoryShared: "memory", RedisShared: "redis", SqlShared: "sql", JsonShared: "json"}
        stores = [self.counter, names[self.shared]]
        return "+".join(self.database if s == "sql" else s for s in stores)

    @property
    def uses_sql(self) -> bool:
        return self.counter == "sql" or self.shared is SqlShared

    @property
    def uses_redis(self) -> bool:
        return self.counter == "redis" or self.shared is RedisShared

    def outcomes(self) -> list[str]:
        found = ["success", "value_error"]
        if self.uses_sql:
            found.append("unique")
        found.append("conflict")
        if self.uses_sql:
            found.append("fail_commit")
        if self.uses_redis:
            found.append("redis_down")  # last: Redis stays down
        return found

    def partly_saved(self, outcome: str) -> bool:
        """The one case known to save part of an event: SQLite checks deferred foreign keys
        only at COMMIT, and Redis, which decides at commit, has committed before."""
        return outcome == "fail_commit" and self.database == "sqlite" and self.uses_redis


PAIRS = [
    *(Pair(counter, shared, database)
      for database in ("sqlite", "postgresql")
      for counter, shared in (("sql", MemoryShared), ("sql", RedisShared), ("sql", JsonShared),
                              ("client", SqlShared))),
    Pair("redis", MemoryShared), Pair("client", MemoryShared), Pair("json", MemoryShared),
    Pair("client", RedisShared), Pair("redis", JsonShared), Pair("client", JsonShared),
]


@dataclass
class PairApp:
    """The app of one pair (its two entities, plus the SQL ones its refusals use) and what
    its bus published."""

    pair: Pair
    sm: StarModel
    facts: collections.Counter[str] = field(default_factory=collections.Counter)

    @classmethod
    def build(cls, pair: Pair, database_url: str, redis_url: str | None, json_dir: Path) -> PairApp:
        entities: list[type[Entity]] = [COUNTERS[pair.counter], pair.shared]
        if pair.uses_sql:
            entities += [Taken, Fuse]
        settings = Settings(
            secret_key="atomic-events", database_url=database_url, redis_url=redis_url,
            redis_prefix="atom", migrations_dir=str(json_dir / "no-migrations"),
            extra={"jsonfile_dir": str(json_dir)},
        )
        app = cls(pair, StarModel(entities=entities, settings=settings))
        app.sm.services.bus.subscribe(EntityChanged, app._heard)
        return app

    async def _heard(self, fact: EntityChanged) -> None:
        self.facts[fact.namespace] += 1

    async def add_fuse(self) -> None:
        """Before the app starts: the Fuse table with a deferred foreign key to an empty
        table, so a transaction that added a Fuse is refused when it commits."""
        database = self.sm.services.database
        serial = "INTEGER PRIMARY KEY" if database.is_sqlite else "SERIAL PRIMARY KEY"
        async with database.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE atom_fuse_parent (id INTEGER PRIMARY KEY)"))
            await conn.execute(text(
                f"CREATE TABLE atom_fuse (id {serial}, parent INTEGER NOT NULL REFERENCES "
                "atom_fuse_parent (id) DEFERRABLE INITIALLY DEFERRED, sm_version INTEGER NOT NULL DEFAULT 1)"
            ))
        if database.is_sqlite:  # SQLite checks foreign keys only when asked to, per connection
            await database.engine.dispose()
            sa_event.listen(database.engine.sync_engine, "connect", _foreign_keys_on)

    async def count(self, cls: type[Entity], key: str) -> int:
        """The counter ``cls``/``key`` as its store holds it now (0 if there is none)."""
        repository = self.sm.services.repository_for(cls)
        await repository.begin()
        try:
            found = await repository.get(cls, key)
        finally:
            await repository.rollback()
        return int(getattr(found, "n", 0)) if found is not None else 0

    async def shared(self) -> int:
        return await self.count(self.pair.shared, shared_key(self.pair.shared))

    def published(self) -> tuple[int, int]:
        """Facts published about the counters events ran on, and about the shared one."""
        counter = COUNTERS[self.pair.counter]
        ran_on = 0 if counter is ClientCounter else self.facts[counter.namespace()]
        return ran_on, self.facts[self.pair.shared.namespace()]


def _foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def settle() -> None:
    """Let answers already sent be read before a server goes away."""
    await asyncio.sleep(0.2)

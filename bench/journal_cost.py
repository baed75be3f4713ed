"""What the event journal costs: the same event on a journaled and on a plain entity, in process
(``sm.call``: dispatcher, unit of work, store; no HTTP), on PostgreSQL, SQLite and memory.

For each store, rounds alternate plain, journaled, plain, journaled... (``--rounds`` each);
each round runs ``--events`` calls, ``--concurrency`` at a time, on one record. The figure is
the median events per second of each, and the ratio journaled / plain (1.0: free). Every round
checks its counter (no lost or doubled update) and, journaled, that the journal got exactly one
entry per event.

PostgreSQL works in a database of its own (``starmodel_bench_journal``), created at the start
and dropped at the end.

Usage::

    python bench/journal_cost.py [--database postgresql://postgres@127.0.0.1:5432/test]
                                 [--events 400] [--concurrency 8] [--rounds 3]

It is a benchmark, not a test: it prints figures, and its exit status is 0 unless a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlmodel import Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starmodel import Entity, StarModel, event
from starmodel.core.context import CallContext
from starmodel.testing import EventClient

BENCH_DB = "starmodel_bench_journal"


class PlainRow(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0

    @event
    def increment(self) -> None:
        self.n += 1


class JournaledRow(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0
    model_config = {"journal": True}  # type: ignore[typeddict-unknown-key]

    @event
    def increment(self) -> None:
        self.n += 1


class PlainTally(Entity):
    n: int = 0
    model_config = {"scope": "global"}  # type: ignore[typeddict-unknown-key]

    @event
    def increment(self) -> None:
        self.n += 1


class JournaledTally(Entity):
    n: int = 0
    model_config = {"scope": "global", "journal": True}  # type: ignore[typeddict-unknown-key]

    @event
    def increment(self) -> None:
        self.n += 1


async def one_round(
    sm: StarModel, cls: type[Entity], key: str | None, events: int, concurrency: int
) -> float:
    before = await state(sm, cls, key)
    entries_before = len(await sm.journal.history(cls, key or "global", limit=100_000)) \
        if cls.options().journal else 0
    gate = asyncio.Semaphore(concurrency)

    async def call() -> None:
        async with gate:
            await sm.call(cls, "increment", key=key)

    started = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(events)))
    elapsed = time.perf_counter() - started
    after = await state(sm, cls, key)
    assert after == before + events, f"{cls.__name__}: {after - before} updates for {events} events"
    if cls.options().journal:
        entries = len(await sm.journal.history(cls, key or "global", limit=100_000))
        assert entries - entries_before == events, f"{entries - entries_before} entries for {events} events"
    return events / elapsed


async def state(sm: StarModel, cls: type[Entity], key: str | None) -> int:
    async with sm.dispatcher.uow_factory(cls) as uow:
        return int((await uow.load(cls, key or "global")).n)  # type: ignore[attr-defined]


async def measure(label: str, url: str | None, args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="journal-bench-")
    sm = StarModel(entities=[PlainRow, JournaledRow, PlainTally, JournaledTally], secret_key="bench",
                   database_url=url or f"sqlite:///{folder}/bench.db", migrations_dir=f"{folder}/none")
    async with EventClient(sm, timeout=120):
        if url is None and label == "memory":
            pair: list[tuple[type[Entity], str | None]] = [(PlainTally, None), (JournaledTally, None)]
        else:
            pair = []
            for cls in (PlainRow, JournaledRow):
                async with sm.dispatcher.uow_factory(cls) as uow:
                    row = uow.add(cls())
                    await uow.commit(CallContext(session_id="server"))
                pair.append((cls, row.record_key()))
        rates: dict[str, list[float]] = {"plain": [], "journaled": []}
        for _ in range(args.rounds):
            for name, (cls, key) in zip(("plain", "journaled"), pair, strict=True):
                rates[name].append(await one_round(sm, cls, key, args.events, args.concurrency))
    plain, journaled = (statistics.median(rates[n]) for n in ("plain", "journaled"))
    print(f"{label:<11} plain {plain:8.0f} ev/s   journaled {journaled:8.0f} ev/s   "
          f"ratio {journaled / plain:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin = make_url(args.database)
    connect = {
        "host": admin.host, "port": admin.port or 5432, "user": admin.username, "database": admin.database,
    }
    conn = await asyncpg.connect(**connect)
    await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        print(f"{args.events} events per round, {args.concurrency} at a time, {args.rounds} rounds each; "
              "median events/s")
        await measure("postgresql", admin.set(database=BENCH_DB).render_as_string(hide_password=False), args)
        await measure("sqlite", None, args)
        await measure("memory", None, args)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

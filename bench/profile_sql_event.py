"""Where a SQL event's time goes, without HTTP: the two apps of ``sql_throughput.py`` called
directly as ASGI callables against PostgreSQL.

For each app it reports CPU microseconds and wall-clock time per request, and the database
calls per request (asyncpg statements and pings), with ``--concurrency`` requests in flight
(16 like the wrk load, or 1 for the cost of one event alone). With ``--profile`` it adds a
cProfile of the StarModel app (a), by own time and by cumulative time.

It works in the same throw-away database as ``sql_throughput.py`` (created, then dropped).

Usage::

    python bench/profile_sql_event.py [--requests 2000] [--concurrency 16] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sql_bench_apps
import sql_throughput
from asgi_calls import AsgiApp, AsgiResponse, call_asgi, event_scope

FACTORIES = {"a": "build_starmodel_sql_app", "b": "build_sqlalchemy_app"}
_CONNECTION_CALLS = ("execute", "fetch", "fetchrow", "fetchval")
_STATEMENT_CALLS = ("fetch", "fetchrow", "fetchval", "executemany")


async def call(app: AsgiApp, cookie: str | None) -> AsgiResponse:
    """One ``POST /bench_row/increment?_key=1`` through ``app``: status, headers and body."""
    query = f"_key={sql_throughput.ROW_KEY}".encode()
    return await call_asgi(app, event_scope(sql_bench_apps.EVENT_PATH, query, cookie), b"{}")


async def load(app: AsgiApp, cookie: str | None, requests: int, concurrency: int) -> None:
    """``requests`` events, ``concurrency`` of them in flight at a time; all must answer 200."""
    remaining = iter(range(requests))

    async def client() -> None:
        for _ in remaining:
            answer = await call(app, cookie)
            if answer.status != 200:
                raise SystemExit(f"unexpected answer {answer.status}: {answer.body[:300]!r}")

    await asyncio.gather(*(client() for _ in range(concurrency)))


@contextmanager
def count_database_calls() -> Iterator[Counter[str]]:
    """Count what asyncpg sends while the block runs: plain statements (``BEGIN``, ``COMMIT``,
    the pool's ping ``;``) and runs of prepared statements (SQLAlchemy's queries)."""
    counts: Counter[str] = Counter()
    patched = [(asyncpg.Connection, name) for name in _CONNECTION_CALLS]
    patched += [(asyncpg.prepared_stmt.PreparedStatement, name) for name in _STATEMENT_CALLS]
    originals = {(cls, name): getattr(cls, name) for cls, name in patched}

    def counting(name: str, original: Any) -> Any:
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self, asyncpg.prepared_stmt.PreparedStatement):
                query = self.get_query()
            else:
                query = args[0] if args and isinstance(args[0], str) else ""
            counts[f"{name}: {' '.join(query.split())[:70]}"] += 1
            return await original(self, *args, **kwargs)

        return wrapper

    for (cls, name), original in originals.items():
        setattr(cls, name, counting(name, original))
    try:
        yield counts
    finally:
        for (cls, name), original in originals.items():
            setattr(cls, name, original)


async def measure(key: str, requests: int, concurrency: int, profiler: cProfile.Profile | None) -> None:
    """Warm the app up, then print its CPU and wall time and database calls per request."""
    app = getattr(sql_bench_apps, FACTORIES[key])()
    async with app.router.lifespan_context(app):
        answer = await call(app, None)
        if answer.status != 200:
            raise SystemExit(f"({key}) unexpected answer {answer.status}: {answer.body[:300]!r}")
        cookie = (answer.header("set-cookie") or "").split(";", 1)[0] or None
        await load(app, cookie, min(500, requests), concurrency)
        with count_database_calls() as counts:
            if profiler is not None:
                profiler.enable()
            cpu, wall = time.process_time(), time.perf_counter()
            await load(app, cookie, requests, concurrency)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if profiler is not None:
                profiler.disable()
    print(
        f"({key}) {cpu / requests * 1e6:7.0f} us CPU, {wall / requests * 1e6:7.0f} us wall per request "
        f"({requests / wall:.0f} req/s, {concurrency} in flight)"
    )
    for call_name, n in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"      {n / requests:5.2f} x {call_name}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default=sql_throughput.DEFAULT_DATABASE)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per app")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--profile", action="store_true", help="cProfile the StarModel app (a)")
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile tables")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure a and b in turn in a fresh database; print the profile of a if asked."""
    args = parse_args(argv)
    os.environ[sql_bench_apps.DATABASE_ENV] = sql_throughput.create_database(args.database)
    profiler = cProfile.Profile() if args.profile else None
    try:
        asyncio.run(measure("a", args.requests, args.concurrency, profiler))
        asyncio.run(measure("b", args.requests, args.concurrency, None))
    finally:
        sql_throughput.drop_database(args.database)
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The two ASGI apps compared by ``sql_throughput.py``; each is served by its own uvicorn.

Both answer ``POST /bench_row/increment?_key=1`` by adding one to the ``n`` column of one row
of the table ``bench_row`` (in PostgreSQL) and sending one ``datastar-patch-signals`` event
with the new value:

* ``build_starmodel_sql_app``: the full StarModel path: ``BenchRow(Entity, table=True)`` with
  an ``@event increment`` (dispatcher, unit of work, SQL repository with its optimistic
  ``sm_version`` check), answering ``{"bench_row": {"1": {"n": n}}}``.
* ``build_sqlalchemy_app``: a hand-written FastHTML route (the same ``FastHTML(...)``
  construction and session settings as ``bench_apps.py``'s hand-written apps) running
  ``UPDATE bench_row SET n = n + 1 WHERE id = :id RETURNING n`` in a transaction of an async
  SQLAlchemy engine, answering datastar-py's ``DatastarResponse(SSE.patch_signals(...))``.

The database URL comes from ``$BENCH_DATABASE_URL`` (set by the driver), e.g.
``postgresql://postgres@127.0.0.1:5432/starmodel_bench``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from datastar_py.fasthtml import DatastarResponse
from datastar_py.fasthtml import ServerSentEventGenerator as SSE
from fasthtml.common import FastHTML
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Field
from starlette.requests import Request

from starmodel import Entity, StarModel, event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import SECRET, _fasthtml  # a sibling file, not a package

__all__ = [
    "DATABASE_ENV",
    "EVENT_PATH",
    "ROWS",
    "TABLE",
    "BenchRow",
    "build_sqlalchemy_app",
    "build_starmodel_sql_app",
    "create_table_sql",
]

DATABASE_ENV = "BENCH_DATABASE_URL"
EVENT_PATH = "/bench_row/increment"
TABLE = "bench_row"
NAMESPACE = "bench_row"
ROWS = 1000  # the rows of the table (keys 1..ROWS)
UPDATE = text(f"UPDATE {TABLE} SET n = n + 1 WHERE id = :id RETURNING n")


class BenchRow(Entity, table=True):
    """One counter per row; the benchmark increments row 1, or rows drawn among ``ROWS``."""

    id: int | None = Field(default=None, primary_key=True)
    n: int = 0

    @event
    def increment(self) -> None:
        self.n += 1


def create_table_sql() -> list[str]:
    """The DDL of ``bench_row`` as StarModel maps ``BenchRow`` (its ``sm_version`` column too),
    and the ``ROWS`` rows the benchmark increments. The driver runs it, so neither app has to."""
    return [
        f"CREATE TABLE {TABLE} (id SERIAL PRIMARY KEY, n INTEGER NOT NULL, "
        "sm_version INTEGER NOT NULL DEFAULT 1)",
        f"INSERT INTO {TABLE} (id, n, sm_version) SELECT g, 0, 1 FROM generate_series(1, {ROWS}) AS g",
    ]


def database_url() -> str:
    """``$BENCH_DATABASE_URL``; the driver always sets it."""
    url = os.environ.get(DATABASE_ENV)
    if not url:
        raise RuntimeError(f"{DATABASE_ENV} is not set (sql_throughput.py sets it)")
    return url


def asyncpg_url(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+asyncpg://...`` (SQLAlchemy's async driver)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+')[0]}+asyncpg://{rest}" if scheme.startswith("postgres") else url


def build_starmodel_sql_app() -> Any:
    """(a) The full StarModel stack serving ``BenchRow`` only."""
    return StarModel(entities=[BenchRow], secret_key=SECRET, database_url=database_url()).app


def build_sqlalchemy_app() -> FastHTML:
    """(b) The route one would write by hand: one UPDATE ... RETURNING in a transaction."""
    app = _fasthtml()
    engine: AsyncEngine = create_async_engine(asyncpg_url(database_url()))
    _dispose_on_shutdown(app, engine)

    @app.post(EVENT_PATH)
    async def increment(req: Request) -> DatastarResponse:
        key = int(req.query_params["_key"])
        async with engine.begin() as conn:
            n = (await conn.execute(UPDATE, {"id": key})).scalar_one()
        return DatastarResponse(SSE.patch_signals({NAMESPACE: {str(key): {"n": n}}}))

    return app


def _dispose_on_shutdown(app: FastHTML, engine: AsyncEngine) -> None:
    """Close the engine's connections when uvicorn shuts the app down."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        async with inner(asgi) as state:
            try:
                yield state
            finally:
                await engine.dispose()

    app.router.lifespan_context = lifespan

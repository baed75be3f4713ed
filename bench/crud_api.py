"""The generated JSON API against a hand-written one, on PostgreSQL, without HTTP.

Two apps serve the same two requests on a table of 1,000 items:

* ``list``: ``GET /api/items?q=item-1&sort=-price&page=2&per_page=20`` (a search over the name,
  a sort, one page, and the total count);
* ``patch``: ``PATCH /api/items/<id>`` with ``{"stock": n}`` (validate, update with a version
  check, answer the record).

| app | what it is |
|-----|------------|
| a | StarModel: ``Item(Entity, table=True)`` and ``sm.crud(Item)`` (no view code) |
| b | Starlette routes over SQLAlchemy Core (async, asyncpg) with a pydantic model, written by hand |

Each app is called as an ASGI callable (as uvicorn would), ``--concurrency`` requests in flight;
it prints CPU and wall time per request and the ratio a/b of requests per CPU-second (1.0: as
cheap as the hand-written API). It works in a throw-away database (created, then dropped).

Usage::

    python bench/crud_api.py [--requests 2000] [--concurrency 16] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table, func, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field as SqlField
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_calls import AsgiApp, call_asgi, request_scope

from starmodel import Entity, StarModel

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DATABASE = "sm_bench_crud"
ITEMS = 1000
LIST_QUERY = b"q=item-1&sort=-price&page=2&per_page=20"


class Item(Entity, table=True):
    id: int | None = SqlField(default=None, primary_key=True)
    name: str = SqlField(max_length=80)
    price: Decimal = SqlField(default=Decimal("0"), ge=0, max_digits=10, decimal_places=2)
    stock: int = SqlField(default=0, ge=0)


# --- b: the hand-written API -------------------------------------------------------------

metadata = MetaData()
items = Table(
    "item",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False),
    Column("price", Numeric(10, 2), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("sm_version", Integer, nullable=False),
)


class ItemChange(BaseModel):
    model_config = {"extra": "forbid"}
    name: str | None = Field(default=None, max_length=80)
    price: Decimal | None = Field(default=None, ge=0)
    stock: int | None = Field(default=None, ge=0)


def _row(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "price": str(row["price"]), "stock": row["stock"]}


def build_handwritten(url: str) -> Starlette:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))

    async def list_items(request: Request) -> JSONResponse:
        params = request.query_params
        page, per_page = int(params.get("page", 1)), int(params.get("per_page", 20))
        where = func.lower(items.c.name).like(f"%{params.get('q', '').lower()}%")
        sort = params.get("sort", "id")
        column = items.c[sort.removeprefix("-")]
        order = column.desc() if sort.startswith("-") else column.asc()
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(items).where(where))).scalar_one()
            rows = (
                (
                    await conn.execute(
                        select(items)
                        .where(where)
                        .order_by(order, items.c.id)
                        .offset((page - 1) * per_page)
                        .limit(per_page)
                    )
                )
                .mappings()
                .all()
            )
        return JSONResponse(
            {
                "items": [_row(r) for r in rows],
                "total": total,
                "page": page,
                "per_page": per_page,
                "pages": max(1, -(-total // per_page)),
            }
        )

    async def patch_item(request: Request) -> JSONResponse:
        try:
            change = ItemChange.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": "invalid", "errors": exc.errors(include_url=False)}, 422)
        values = change.model_dump(exclude_unset=True)
        key = int(request.path_params["key"])
        async with engine.begin() as conn:
            row = (
                (await conn.execute(select(items).where(items.c.id == key).with_for_update()))
                .mappings()
                .first()
            )
            if row is None:
                return JSONResponse({"detail": "not found"}, 404)
            await conn.execute(
                update(items)
                .where(items.c.id == key, items.c.sm_version == row["sm_version"])
                .values(**values, sm_version=row["sm_version"] + 1)
            )
        return JSONResponse(_row({**row, **values}), headers={"ETag": f'"{row["sm_version"] + 1}"'})

    return Starlette(
        routes=[Route("/api/items", list_items), Route("/api/items/{key}", patch_item, methods=["PATCH"])]
    )


def build_starmodel(url: str) -> Any:
    sm = StarModel(entities=[Item], database_url=url, secret_key="bench")
    sm.crud(Item)
    return sm.app


# --- driving ------------------------------------------------------------------------------


async def call(
    app: AsgiApp, method: str, path: str, query: bytes = b"", body: bytes = b""
) -> tuple[int, bytes]:
    answer = await call_asgi(app, request_scope(method, path, query, [], body=body), body)
    return answer.status, answer.body


async def run(app: AsgiApp, operation: str, requests: int, concurrency: int) -> None:
    remaining = iter(range(requests))
    rng = random.Random(7)

    async def client() -> None:
        for _ in remaining:
            if operation == "list":
                status, body = await call(app, "GET", "/api/items", LIST_QUERY)
            else:
                key = rng.randint(1, ITEMS)
                payload = json.dumps({"stock": rng.randint(0, 100)}).encode()
                status, body = await call(app, "PATCH", f"/api/items/{key}", body=payload)
            if status != 200:
                raise SystemExit(f"unexpected answer {status}: {body[:300]!r}")

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure(app: Any, operation: str, requests: int, concurrency: int) -> tuple[float, float]:
    async with app.router.lifespan_context(app):
        status, body = await call(app, "GET", "/api/items", LIST_QUERY)
        found = json.loads(body)
        if (
            status != 200 or found["total"] != 111 or len(found["items"]) != 20
        ):  # item-1, item-10.., item-100..
            raise SystemExit(f"wrong list answer {status}: {body[:300]!r}")
        await run(app, operation, min(300, requests), concurrency)
        cpu, wall = time.process_time(), time.perf_counter()
        await run(app, operation, requests, concurrency)
        return (time.process_time() - cpu) / requests, (time.perf_counter() - wall) / requests


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
    try:
        await conn.execute(
            "CREATE TABLE item (id serial PRIMARY KEY, name varchar(80) NOT NULL, "
            "price numeric(10,2) NOT NULL, stock integer NOT NULL, "
            "sm_version integer NOT NULL DEFAULT 1)"
        )
        await conn.executemany(
            "INSERT INTO item (name, price, stock) VALUES ($1, $2, $3)",
            [(f"item-{n}", Decimal(n % 97) + Decimal("0.5"), n % 50) for n in range(ITEMS)],
        )
    finally:
        await conn.close()


async def admin(statement: str, admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default=ADMIN_URL, help="an admin connection to PostgreSQL")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    base = args.database.rsplit("/", 1)[0]
    url = f"{base}/{DATABASE}"
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", args.database))
    asyncio.run(admin(f"CREATE DATABASE {DATABASE}", args.database))
    os.environ.pop("DATABASE_URL", None)
    try:
        asyncio.run(prepare(url))
        print(f"{ITEMS} items, {args.requests} requests per app and operation, {args.concurrency} in flight")
        for operation in ("list", "patch"):
            results = {}
            for key, build in (("a", build_starmodel), ("b", build_handwritten)):
                cpu, wall = asyncio.run(measure(build(url), operation, args.requests, args.concurrency))
                results[key] = cpu
                print(
                    f"  {operation:5} ({key}) {cpu * 1e6:6.0f} us CPU, {wall * 1e6:6.0f} us wall per request"
                )
            print(f"  {operation:5} a/b requests per CPU-second: {results['b'] / results['a']:.2f}")
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", args.database))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What finding the signed-in user costs a request: a page that looks its user up
(``await auth.user(request)``), called as an ASGI callable, for a visitor and for a signed-in
user, on SQLite and on PostgreSQL.

For each it prints CPU microseconds and wall-clock microseconds per request (medians of
``--rounds``, visitor and signed-in alternating) and the database statements per request; the
ratio signed-in / visitor is the price of the look-up (the sign-in's row joined with its user).
Run it on two checkouts to compare them: it uses only the public API.

PostgreSQL: a throw-away database ``starmodel_bench_auth`` beside ``--database`` (created, then
dropped).

Usage::

    python bench/auth_requests.py [--requests 2000] [--rounds 5] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]
from argon2 import PasswordHasher
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import make_url
from starlette.requests import Request

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_calls import call_scope, http_scope

from starmodel import StarModel
from starmodel.contrib.auth import Auth, Passwords

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "starmodel_bench_auth"
EMAIL, PASSWORD = "bench@example.com", "correct horse battery"


def build(database_url: str) -> tuple[StarModel, Auth]:
    sm = StarModel(entities=[], secret_key="bench", database_url=database_url)
    auth = Auth(sm, passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)),
                rate_limit=None)

    @sm.app.route("/me")
    async def me(request: Request) -> str:
        user = await auth.user(request)
        return "visitor" if user is None else user.email

    return sm, auth


async def page(sm: StarModel, cookie: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return await call_scope(sm.app, http_scope("GET", "/me", b"", headers), b"")


async def sign_in(sm: StarModel) -> str:
    body = urlencode({"email": EMAIL, "password": PASSWORD}).encode()
    headers = [(b"datastar-request", b"true"), (b"origin", b"http://127.0.0.1:8000")]
    scope = http_scope("POST", "/auth/login", b"", headers, body=body)
    scope["headers"] = [h for h in scope["headers"] if h[0] != b"content-type"]
    scope["headers"].append((b"content-type", b"application/x-www-form-urlencoded"))
    status, answer, _ = await call_scope(sm.app, scope, body)
    if status != 200:
        raise SystemExit(f"sign-in refused ({status})")
    return answer["set-cookie"].split(";", 1)[0]


async def measure(database_url: str, requests: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    """``{"visitor" | "signed in": (CPU us, wall us, statements) per request}``."""
    sm, auth = build(database_url)
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    async with sm.app.router.lifespan_context(sm.app):
        await auth.create_user(EMAIL, PASSWORD)
        cookies = {"visitor": None, "signed in": await sign_in(sm)}
        for who, cookie in cookies.items():
            expected = b"visitor" if cookie is None else EMAIL.encode()
            for _ in range(200):  # warm up
                status, _, body = await page(sm, cookie)
            if status != 200 or expected not in body:
                raise SystemExit(f"{who}: answered {status} {body[:100]!r}")
        sqlalchemy_event.listen(sm.services.database.engine.sync_engine, "before_cursor_execute", count)
        samples: dict[str, list[tuple[float, float, int]]] = {who: [] for who in cookies}
        for _ in range(rounds):
            for who, cookie in cookies.items():
                statements = 0
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(requests):
                    await page(sm, cookie)
                samples[who].append((time.process_time() - cpu, time.perf_counter() - wall, statements))
    await sm.services.database.dispose()
    return {
        who: (statistics.median(s[0] for s in runs) / requests * 1e6,
              statistics.median(s[1] for s in runs) / requests * 1e6,
              statistics.median(s[2] for s in runs) / requests)
        for who, runs in samples.items()
    }


async def _admin(url: str, *statements: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def report(name: str, found: dict[str, tuple[float, float, float]]) -> None:
    for who, (cpu, wall, statements) in found.items():
        print(f"{name:10} {who:9}  {cpu:8.0f} CPU us  {wall:8.0f} wall us  {statements:.2f} statements")
    visitor, signed = found["visitor"], found["signed in"]
    cpu, wall = signed[0] / visitor[0], signed[1] / visitor[1]
    print(f"{name:10} signed in / visitor: CPU x{cpu:.2f}, wall x{wall:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and caller")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="a PostgreSQL database to connect to")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        report("SQLite", asyncio.run(measure(f"sqlite:///{folder}/bench.db", args.requests, args.rounds)))
    bench_url = make_url(args.database).set(database=BENCH_DATABASE).render_as_string(False)
    drop = f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
    asyncio.run(_admin(args.database, drop, f"CREATE DATABASE {BENCH_DATABASE}"))
    try:
        report("PostgreSQL", asyncio.run(measure(bench_url, args.requests, args.rounds)))
    finally:
        asyncio.run(_admin(args.database, drop))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Integration fixtures: real databases.

- SQLite: a file in the test's ``tmp_path``.
- PostgreSQL at 127.0.0.1:5432 (trust auth, user ``postgres`` or else ``root``): a uniquely
  named database is created for the test session and dropped at its end; after each test
  its schema is emptied, so every test starts with no tables. Without a reachable server
  the PostgreSQL cases fail, saying why (`.ci/run` starts the server; they are never skipped).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

if TYPE_CHECKING:
    from redis_process_support import MakeServer, RedisOutage

# the SSE helpers of tests/http (sm_http) serve these tests too, via integration_support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

PG_HOST, PG_PORT, PG_ADMIN_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")


def run_blocking(make: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    """Run a coroutine to completion in a thread with its own event loop (usable from sync
    fixtures, whatever loop pytest-asyncio has set up for the tests)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout)


async def _execute(user: str, database: str, *statements: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database=database, timeout=3)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close(timeout=3)


@dataclass(frozen=True)
class Postgres:
    user: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{PG_HOST}:{PG_PORT}/{self.database}"

    def reset(self) -> None:
        """Drop every table (the whole ``public`` schema) of the session database."""
        run_blocking(lambda: _execute(
            self.user,
            self.database,
            "SET lock_timeout = '5s'",
            "DROP SCHEMA public CASCADE",
            "CREATE SCHEMA public",
        ))


def _find_user() -> tuple[str | None, str]:
    reasons = []
    for user in PG_USERS:
        try:
            run_blocking(lambda user=user: _execute(user, PG_ADMIN_DB, "SELECT 1"), timeout=10)
            return user, ""
        except Exception as exc:
            reasons.append(f"{user}: {type(exc).__name__}: {exc}")
    return None, "; ".join(reasons)


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[Postgres | str]:
    """The session's own PostgreSQL database, or why there is none."""
    user, why = _find_user()
    if user is None:
        yield f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({why})"
        return
    name = f"sm_it_{secrets.token_hex(4)}"
    run_blocking(lambda: _execute(user, PG_ADMIN_DB, f'CREATE DATABASE "{name}"'))
    try:
        yield Postgres(user, name)
    finally:
        run_blocking(lambda: _execute(user, PG_ADMIN_DB, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres(postgres_session: Postgres | str) -> Iterator[Postgres]:
    """The session's PostgreSQL database, emptied after the test."""
    if isinstance(postgres_session, str):
        pytest.fail(f"PostgreSQL is needed for this test: {postgres_session}")
    try:
        yield postgres_session
    finally:
        postgres_session.reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A database URL, once per backend: a fresh SQLite file, or the empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.url


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(clean_settings_env: None) -> None:
    """Tests here build their settings explicitly (DATABASE_URL from the shell must not leak in)."""


# --- Redis --------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _drop_prefix(url: str, prefix: str) -> None:
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the real Redis at 127.0.0.1:6379 (its keys are
    deleted afterwards). Without a reachable server the test fails, saying why."""
    prefix = f"smtest{secrets.token_hex(4)}"
    try:
        run_blocking(lambda: _drop_prefix(REDIS_URL, prefix), timeout=10)
    except Exception as exc:
        pytest.fail(f"Redis is needed for this test: {REDIS_URL} is not reachable ({exc})")
    try:
        yield prefix
    finally:
        run_blocking(lambda: _drop_prefix(REDIS_URL, prefix), timeout=10)


# --- real server processes sharing the real Redis ----------------------------------------------
# (their helpers live in redis_process_support, imported here once tests/http is on sys.path)


@pytest.fixture
def app_servers(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[MakeServer]:
    """Makes server processes of ``redis_app.py`` on free ports, all with this test's Redis
    prefix and one secret key; each is stopped after the test (started by the test).

    ``make(name, database_url=None)``: without ``database_url`` the process gets a SQLite file
    of its own; pass one URL to several processes to share a database.
    """
    from redis_process_support import ServerProcess, server_env
    from sm_http import free_port

    made: list[ServerProcess] = []
    migrations = tmp_path / "no-migrations"  # no Alembic here: tables are created at start

    def make(name: str, database_url: str | None = None) -> ServerProcess:
        url = database_url or f"sqlite:///{tmp_path / f'{name}.db'}"
        env = server_env(
            redis_url=redis_url, redis_prefix=redis_prefix, database_url=url, migrations_dir=migrations
        )
        server = ServerProcess(name, free_port(), env, tmp_path / f"{name}.log", tmp_path)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.kill()


@pytest.fixture
def redis_outage(redis_prefix: str) -> Iterator[RedisOutage]:
    """Lets a test stop the real Redis (``stop()``); whatever happens, Redis is started again
    with the machine's start command and answers PONG before the test's other fixtures are
    torn down (``redis_prefix`` cleans up after it) and before the next test runs."""
    from redis_process_support import RedisOutage

    outage = RedisOutage()
    try:
        yield outage
    finally:
        outage.start()

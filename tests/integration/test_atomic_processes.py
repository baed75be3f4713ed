"""Two server processes sharing PostgreSQL and Redis: an event that changes a SQL record and a
counter in Redis, called 50 times at once over both, is applied exactly once per answered call
in each store (a conflict in Redis re-runs the event only while nothing of it is saved)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from atomic_entities import RedisShared, SqlCounter
from redis import asyncio as aioredis
from redis_process_support import ServerProcess, browser, post, server_env
from sm_http import free_port

ATOMIC_APP = Path(__file__).resolve().with_name("atomic_app.py")
CALLS = 50


@dataclass
class AtomicServer(ServerProcess):
    """A server process of ``atomic_app.py``."""

    def start(self) -> None:
        command = [
            sys.executable, "-m", "starmodel.cli.main", "run", str(ATOMIC_APP),
            "--port", str(self.port), "--no-reload", "--log-level", "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )


def path_of(cls: type, event: str) -> str:
    return cls.events()[event].route_path(cls)  # type: ignore[attr-defined,no-any-return]


async def test_two_processes_apply_a_sql_and_redis_event_once_per_answered_call(
    postgres, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = server_env(redis_url=redis_url, redis_prefix=redis_prefix, database_url=postgres.url,
                     migrations_dir=tmp_path / "no-migrations")
    servers = [AtomicServer(name, free_port(), env, tmp_path / f"{name}.log", tmp_path) for name in "ab"]
    try:
        for server in servers:  # one at a time: both would create the tables at start
            server.start()
            await server.wait_up()
        partner = RedisShared.namespace()
        async with browser() as client:
            for record in ("1", "2"):
                opened = await post(client, servers[0], path_of(SqlCounter, "open"), record=record)
                assert opened.status_code == 200, opened.text

            async def bump(n: int, mode: str) -> int:
                server = servers[n % 2]  # calls alternate between the processes...
                key = str(1 + (n // 2) % 2)  # ...and the records
                path = path_of(SqlCounter, "bump")
                return (await post(client, server, path, key, partner=partner, mode=mode)).status_code

            applied = await asyncio.gather(*(bump(n, "ok") for n in range(CALLS)))
            refused = await asyncio.gather(*(bump(n, "value_error") for n in range(CALLS)))
        answered = sum(1 for status in applied if 200 <= status < 300)
        assert set(applied) <= {200, 409} and answered >= CALLS // 2, applied
        assert set(refused) == {422}
        sql_total, redis_total = await sql_sum(postgres.url), await redis_count(redis_url, redis_prefix)
        print(f"atomic two processes: calls={2 * CALLS} answered={answered} "
              f"sql={sql_total} redis={redis_total}")
        assert (sql_total, redis_total) == (answered, answered)
        for server in servers:
            server.assert_no_traceback()
    finally:
        for server in servers:
            server.kill()


async def sql_sum(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(n), 0) FROM atom_sql_counter"))
    finally:
        await conn.close()


async def redis_count(url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        stored = await client.hget(f"{prefix}:{RedisShared.namespace()}:global", "d")
    finally:
        await client.aclose()
    return int(json.loads(stored)["n"]) if stored else 0

"""Two server processes sharing PostgreSQL and Redis: while a background job runs in one of
them, plain events on the same entities answer at once in both, and every change survives;
an exclusive job is refused in either process while it runs (409)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from redis import asyncio as aioredis
from redis_process_support import ServerProcess, browser, post, server_env
from sm_http import free_port

LONG_APP = Path(__file__).resolve().with_name("long_run_app.py")
STEP_SECONDS = 1.0  # long_run_app.STEP_SECONDS (not imported: it builds an app)
SESSIONS, CLICKS = 5, 50  # 50 plain events per entity
BOUND = 0.2


@dataclass
class LongRunServer(ServerProcess):
    """A server process of ``long_run_app.py``."""

    def start(self) -> None:
        command = [
            sys.executable, "-m", "starmodel.cli.main", "run", str(LONG_APP),
            "--port", str(self.port), "--no-reload", "--log-level", "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )


async def test_two_processes_serve_plain_events_while_a_job_runs_and_lose_nothing(
    postgres, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = server_env(redis_url=redis_url, redis_prefix=redis_prefix, database_url=postgres.url,
                     migrations_dir=tmp_path / "no-migrations")
    servers = [LongRunServer(name, free_port(), env, tmp_path / f"{name}.log", tmp_path) for name in "ab"]
    try:
        for server in servers:  # one at a time: both would create the tables at start
            server.start()
            await server.wait_up()
        a, b = servers
        async with browser() as starter:
            assert (await post(starter, a, "/long_sql/open")).status_code == 200
            sessions = [browser() for _ in range(SESSIONS)]
            timings: list[float] = []

            async def click(n: int, session: httpx.AsyncClient, path: str, key: int | None) -> None:
                begun = time.perf_counter()
                answer = await post(session, servers[n % 2], path, key=key)
                timings.append(time.perf_counter() - begun)
                assert answer.status_code == 200, answer.text

            for n, session in enumerate(sessions):  # warm up: each session's connections open
                await click(n, session, "/long_redis/click", None)
            timings.clear()
            for path, key in (("/long_sql/job", 1), ("/long_redis/job", None)):
                answer = await post(starter, a, path, key=key)
                assert answer.status_code in (200, 204), answer.text
            refused = await post(starter, b, "/long_redis/job")  # exclusive: in any process
            assert refused.status_code == 409 and "The import is running already" in refused.text

            started = time.perf_counter()
            for n in range(CLICKS):  # a SQL and a Redis click at a time, from each session in turn
                session = sessions[n % SESSIONS]
                await asyncio.gather(click(n, session, "/long_sql/click", 1),
                                     click(n + 1, session, "/long_redis/click", None))
            took = time.perf_counter() - started
            assert took < 3 * STEP_SECONDS, f"the clicks must be made while the jobs run ({took:.2f}s)"
            assert max(timings) < BOUND, sorted(timings)[-5:]
            for session in sessions:
                await session.aclose()

            async def final_states() -> tuple[tuple[int, int], dict]:
                conn = await asyncpg.connect(postgres.url)
                try:
                    row = await conn.fetchrow("SELECT clicks, steps FROM long_sql WHERE id = 1")
                finally:
                    await conn.close()
                client = aioredis.Redis.from_url(redis_url, decode_responses=True)
                try:
                    stored = await client.hget(f"{redis_prefix}:long_redis:global", "d")
                finally:
                    await client.aclose()
                return (row["clicks"], row["steps"]), json.loads(stored or "{}")

            deadline = time.perf_counter() + 10
            while True:  # until both jobs ended
                sql, red = await final_states()
                if (sql[1] == 3 and red.get("steps") == 3) or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.1)
            clicks = CLICKS + SESSIONS  # the warm-up's clicks too
            assert sql == (CLICKS + 300, 3)  # the job's additions and every click, in one field
            assert (red["clicks"], red["steps"]) == (clicks, 3)
            again = await post(starter, b, "/long_redis/job")  # it ended: a new run may start
            assert again.status_code in (200, 204), again.text
        for server in servers:
            server.assert_no_traceback()
    finally:
        for server in servers:
            server.kill()

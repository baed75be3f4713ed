"""A Redis or PostgreSQL server that freezes (SIGSTOP: its sockets stay open, nothing answers)
under a running server process of ``freeze_app.py``.

Each test freezes servers of its own (``own_services``), never the machine's shared ones.
Calls that need the frozen server answer 503 within a bound (the first ones after one store
timeout, the next ones at once), events on the other stores keep answering as fast as ever,
and after SIGCONT everything works again without a restart. The latencies are printed
(``pytest -s``) with their p99.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from own_services import OwnPostgres, OwnRedis
from redis_process_support import (
    ServerProcess,
    answer_signals,
    browser,
    change_of,
    live,
    post,
    server_env,
    wait_for,
)
from sm_http import free_port

APP = Path(__file__).resolve().with_name("freeze_app.py")
CALLS = 20  # concurrent calls while a server is frozen
ALONGSIDE = 5  # SQLite events, and SQLite-and-Redis events, sent with the first Redis events
MEANWHILE = 100  # calls one after the other on the stores that are up (their p99 is checked)
FIRST_BOUND = 2.5  # seconds: the calls that find out (one store timeout, 1.5 s by default)
KNOWN_BOUND = 1.0  # seconds: calls once the server is known to be away (under one timeout)
MEMORY_BOUND = 0.2  # seconds: an event on a memory entity
OTHER_BOUND = 0.5  # seconds: an event on another store that is up (disk writes: SQLite)
BUS_BOUND = 1.5  # seconds: an event whose fact meets the frozen bus first (bus timeout 1 s)


class FreezeAppServer(ServerProcess):
    """``starmodel run freeze_app.py`` (the helpers of the Redis process tests, another app)."""

    def start(self) -> None:
        command = [
            sys.executable, "-m", "starmodel.cli.main", "run", str(APP),
            "--port", str(self.port), "--no-reload", "--log-level", "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[Any]:
    """Makes (not starts) the server process; stopped after the test, whatever happened."""
    made: list[FreezeAppServer] = []

    def make(redis_url: str, database_url: str) -> FreezeAppServer:
        env = server_env(
            redis_url=redis_url, redis_prefix="frozen", database_url=database_url,
            migrations_dir=tmp_path / "no-migrations",
        )
        server = FreezeAppServer("app", free_port(), env, tmp_path / "app.log", tmp_path)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.kill()


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = await call
    return answer, time.monotonic() - started


def p99(seconds: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ranked = sorted(seconds)
    return ranked[math.ceil(0.99 * len(ranked)) - 1]


def report(what: str, seconds: list[float]) -> None:
    print(f"\n{what}: n={len(seconds)} p99={p99(seconds):.3f}s "
          f"min={min(seconds):.3f}s max={max(seconds):.3f}s")


def assert_unavailable(answer: httpx.Response, service: str) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text)
    message = answer.headers.get("x-starmodel-error", "")
    assert service in message and "cannot be reached" in message, message
    assert answer.headers.get("retry-after") == "1", answer.headers
    assert "datastar-patch-signals" not in answer.text  # nothing changed


async def sequential(client: httpx.AsyncClient, server: ServerProcess, path: str, n: int,
                     key: Any = None) -> list[float]:
    """``n`` calls one after the other, each answered 200; their latencies."""
    seconds = []
    for _ in range(n):
        answer, took = await timed(post(client, server, path, key))
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        seconds.append(took)
    return seconds


async def test_a_frozen_redis_costs_one_timeout_and_holds_up_no_other_store(
    own_redis: OwnRedis, app_server: Any, tmp_path: Path
) -> None:
    """Redis frozen under a running process (SQLite for its SQL records, Redis for its Redis
    entity and its bus): 20 concurrent Redis events all answer 503 naming Redis within 2.5 s
    (none waits behind another's timeout), and so do events that need SQLite and Redis, while
    SQLite-only events sent with them are answered 200 (the SQLite write lock is not held past
    one timeout); once Redis is known to be away, Redis events answer 503 at once and memory and
    SQLite events as fast as ever, their changes reaching this process's tabs. After SIGCONT,
    Redis events work again, and the tabs resync (their facts never crossed processes)."""
    server = app_server(own_redis.url, f"sqlite:///{tmp_path / 'app.db'}")
    server.start()
    await server.wait_up()
    async with browser() as client:
        assert (await post(client, server, "/ledger/open")).status_code == 200
        assert answer_signals(await post(client, server, "/stock/bump"), "stock") == {"count": 1}
        async with live(client, server) as tab:
            await tab.next()

            own_redis.freeze()
            redis_calls = [timed(post(client, server, "/stock/bump")) for _ in range(CALLS)]
            both_calls = [timed(post(client, server, "/ledger/bump_with_stock", 1)) for _ in range(ALONGSIDE)]
            sqlite_calls = [timed(post(client, server, "/ledger/bump", 1)) for _ in range(ALONGSIDE)]
            memory_call = timed(post(client, server, "/tally/bump"))
            answers = await asyncio.gather(*redis_calls, *both_calls, *sqlite_calls, memory_call)
            first = [took for _, took in answers[:CALLS]]
            report("Redis frozen, first Redis events", first)
            for answer, took in answers[: CALLS + ALONGSIDE]:
                assert_unavailable(answer, f"Redis at 127.0.0.1:{own_redis.port}")
                assert took < FIRST_BOUND, f"answered after {took:.2f}s"
            for answer, took in answers[CALLS + ALONGSIDE : CALLS + 2 * ALONGSIDE]:
                assert answer.status_code == 200, answer.text
                assert took < FIRST_BOUND, f"a SQLite event answered after {took:.2f}s"
            memory_answer, memory_took = answers[-1]
            assert memory_answer.status_code == 200 and memory_took < BUS_BOUND, memory_took
            print(f"memory event sent with them: {memory_took:.3f}s")

            known = await asyncio.gather(*(timed(post(client, server, "/stock/bump")) for _ in range(CALLS)))
            report("Redis frozen, next Redis events", [took for _, took in known])
            for answer, took in known:
                assert_unavailable(answer, f"Redis at 127.0.0.1:{own_redis.port}")
                assert took < KNOWN_BOUND, f"answered after {took:.2f}s"

            memory = await sequential(client, server, "/tally/bump", MEANWHILE)
            report("Redis frozen, memory events", memory)
            sqlite = await sequential(client, server, "/ledger/bump", MEANWHILE, key=1)
            report("Redis frozen, SQLite events", sqlite)
            assert p99(memory) < MEMORY_BOUND and p99(sqlite) < OTHER_BOUND, (memory, sqlite)
            seen = await change_of(tab, "tally", timeout=2)  # delivered here, not through Redis
            assert seen.signals["tally"] == {"count": 1}
            async with live(client, server) as opened_during:  # what can be had, at once
                initial = await opened_during.next(timeout=KNOWN_BOUND + 1)
                assert initial.signals["tally"] == {"count": 1 + MEANWHILE} and "stock" not in initial.signals

            own_redis.thaw()
            thawed = time.monotonic()

            async def redis_works() -> httpx.Response | None:
                answer = await post(client, server, "/stock/bump")
                return answer if answer.status_code == 200 else None

            back = await wait_for(redis_works, "Redis events work again", timeout=10)
            print(f"Redis events work again {time.monotonic() - thawed:.2f}s after SIGCONT")
            assert answer_signals(back, "stock") == {"count": 2}  # no 503 wrote anything
            last_id = None
            with pytest.raises(EOFError):  # resync: the stream is closed, the tab reconnects
                while True:
                    last_id = (await tab.next(timeout=5)).id or last_id
        async with live(client, server, last_event_id=last_id) as again:
            full = await again.next()
            assert full.signals == {"stock": {"count": 2}, "tally": {"count": 1 + MEANWHILE}}, (last_id, full)
        ledger = await post(client, server, "/ledger/bump", 1)
        # the SQLite events answered 200, and nothing of the 503s
        assert answer_signals(ledger, "ledger") == {"1": {"count": ALONGSIDE + MEANWHILE + 1}}
    server.assert_no_traceback()
    log = server.log()
    assert log.count(f"Redis at 127.0.0.1:{own_redis.port} cannot be reached") == 1, log
    assert log.count(f"Redis bus at 127.0.0.1:{own_redis.port} unreachable") == 1, log


async def test_a_frozen_postgresql_costs_one_timeout_and_holds_up_no_other_store(
    own_postgres: OwnPostgres, own_redis: OwnRedis, app_server: Any
) -> None:
    """PostgreSQL frozen (postmaster and backends) under a running process: 20 concurrent SQL
    events all answer 503 naming the database within 2.5 s, the next ones at once; memory and
    Redis events answer as fast as ever meanwhile. After SIGCONT, SQL events work again and
    nothing of the refused calls was written."""
    server = app_server(own_redis.url, own_postgres.url)
    server.start()
    await server.wait_up()
    async with browser() as client:
        assert (await post(client, server, "/ledger/open")).status_code == 200
        assert (await post(client, server, "/ledger/bump", 1)).status_code == 200

        own_postgres.freeze()
        first = await asyncio.gather(*(timed(post(client, server, "/ledger/bump", 1)) for _ in range(CALLS)))
        report("PostgreSQL frozen, first SQL events", [took for _, took in first])
        database = f"the database cannot be reached (PostgreSQL at 127.0.0.1:{own_postgres.port}"
        for answer, took in first:
            assert_unavailable(answer, database)
            assert took < FIRST_BOUND, f"answered after {took:.2f}s"

        known = await asyncio.gather(*(timed(post(client, server, "/ledger/bump", 1)) for _ in range(CALLS)))
        report("PostgreSQL frozen, next SQL events", [took for _, took in known])
        for answer, took in known:
            assert_unavailable(answer, f"PostgreSQL at 127.0.0.1:{own_postgres.port}")
            assert took < KNOWN_BOUND, f"answered after {took:.2f}s"

        memory = await sequential(client, server, "/tally/bump", MEANWHILE)
        report("PostgreSQL frozen, memory events", memory)
        redis = await sequential(client, server, "/stock/bump", MEANWHILE)
        report("PostgreSQL frozen, Redis events", redis)
        assert p99(memory) < MEMORY_BOUND and p99(redis) < OTHER_BOUND, (memory, redis)

        own_postgres.thaw()
        thawed = time.monotonic()

        async def sql_works() -> httpx.Response | None:
            answer = await post(client, server, "/ledger/bump", 1)
            return answer if answer.status_code == 200 else None

        back = await wait_for(sql_works, "SQL events work again", timeout=10)
        print(f"SQL events work again {time.monotonic() - thawed:.2f}s after SIGCONT")
        assert answer_signals(back, "ledger") == {"1": {"count": 2}}  # none of the 503s
    server.assert_no_traceback()
    log = server.log()
    assert log.count("the database cannot be reached") == 1, log

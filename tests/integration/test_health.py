"""``/_starmodel/health`` and ``/_starmodel/ready`` of a real server process, over a Redis and
a PostgreSQL of the test's own that it freezes, stops and starts again (never the machine's
shared ones): readiness names what is down, answers within a bound even while a server is
frozen, and comes back by itself; health answers 200 throughout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from own_services import OwnPostgres, OwnRedis
from redis_process_support import server_env
from sm_http import free_port
from test_frozen_services import FreezeAppServer

STORE_TIMEOUT = 1.5  # the default store timeout: readiness waits at most twice that
READY_BOUND = 2 * STORE_TIMEOUT + 0.5
KNOWN_BOUND = 0.5  # seconds: readiness once the outage is known


@pytest.fixture
def services() -> Iterator[tuple[OwnRedis, OwnPostgres]]:
    redis_server, postgres = OwnRedis(), OwnPostgres()
    try:
        redis_server.start()
        postgres.start()
        yield redis_server, postgres
    finally:
        redis_server.stop()
        postgres.stop()


@pytest.fixture
def server(services: tuple[OwnRedis, OwnPostgres], tmp_path: Path) -> Iterator[FreezeAppServer]:
    redis_server, postgres = services
    env = server_env(redis_url=redis_server.url, redis_prefix="health", database_url=postgres.url,
                     migrations_dir=tmp_path / "no-migrations")
    app = FreezeAppServer("app", free_port(), env, tmp_path / "app.log", tmp_path)
    try:
        app.start()
        yield app
    finally:
        app.kill()


async def ready(client: httpx.AsyncClient, server: FreezeAppServer) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    answer = await client.get(f"{server.url}/_starmodel/ready")
    took = time.monotonic() - started
    assert answer.headers["content-type"].startswith("application/json")
    return answer.status_code, answer.json(), took


async def ready_becomes(client: httpx.AsyncClient, server: FreezeAppServer, status: int,
                        timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body, took = await ready(client, server)
        assert took < READY_BOUND, (took, body)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"readiness stayed {code}: {body}"
        await asyncio.sleep(0.2)


async def healthy(client: httpx.AsyncClient, server: FreezeAppServer) -> None:
    answer = await client.get(f"{server.url}/_starmodel/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


async def test_readiness_names_each_service_down_and_never_waits_on_a_frozen_one(
    services: tuple[OwnRedis, OwnPostgres], server: FreezeAppServer
) -> None:
    redis_server, postgres = services
    await server.wait_up()
    async with httpx.AsyncClient(timeout=10) as client:
        await healthy(client, server)
        body = await ready_becomes(client, server, 200)
        assert body == {"status": "ready", "services": {"database": "ok", "redis": "ok", "bus": "ok"}}

        redis_server.freeze()  # the process stays, its sockets stay open, nothing answers
        body = await ready_becomes(client, server, 503)
        assert body["services"]["redis"] == "down" and body["services"]["database"] == "ok"
        assert f"127.0.0.1:{redis_server.port}" in body["down"]["redis"]
        code, _, took = await ready(client, server)
        assert code == 503 and took < KNOWN_BOUND, took  # the breaker knows: no waiting
        print(f"\nready with Redis frozen, once known: {took:.3f}s")
        redis_server.thaw()
        await ready_becomes(client, server, 200)

        redis_server.stop()  # really stopped: connections refused
        body = await ready_becomes(client, server, 503)
        assert set(body["down"]) == {"redis", "bus"}, body
        assert "cannot be reached" in body["down"]["redis"]
        await healthy(client, server)

        postgres.stop()
        body = await ready_becomes(client, server, 503)
        deadline = time.monotonic() + 10
        while "database" not in body["down"]:
            assert time.monotonic() < deadline, body
            _, body, _ = await ready(client, server)
        assert set(body["down"]) == {"database", "redis", "bus"}, body
        assert f"127.0.0.1:{postgres.port}" in body["down"]["database"]
        code, body, took = await ready(client, server)
        print(f"ready with Redis and PostgreSQL stopped: {took:.3f}s -> {body}")
        assert code == 503 and took < READY_BOUND
        await healthy(client, server)

        redis_server.start()  # the same port again: the app finds it by itself
        body = await ready_becomes(client, server, 503, timeout=15)
        deadline = time.monotonic() + 15
        while set(body.get("down", {})) != {"database"}:
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.2)
            _, body, _ = await ready(client, server)
    server.assert_no_traceback()

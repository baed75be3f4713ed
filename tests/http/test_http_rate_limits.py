"""Per-event rate limits (``@event(rate=...)``): one suite for the memory and the Redis
counters, events answering 429 with ``Retry-After`` and changing nothing, callers counted per
session or per signed-in user, two apps and two server processes sharing the count through
the real Redis, and Redis going away without an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from sm_http import BASE_URL, DATASTAR, free_port, post_event

from starmodel import Entity, StarModel, event
from starmodel.adapters.driven.rates import FallbackCallCounter, MemoryCallCounter, RedisCallCounter
from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.core.rates import CallCounter, Rate
from starmodel.testing import AsgiLifespan, AsgiTransport

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


class Poll(Entity):
    votes: int = 0
    views: int = 0

    @event(rate="3/minute")
    def vote(self):
        self.votes += 1

    @event
    def view(self):
        self.views += 1


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"smratetest{secrets.token_hex(4)}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- the counters: one suite, memory and Redis ---------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def counter(request, redis_prefix) -> AsyncIterator[CallCounter]:
    if request.param == "memory":
        yield MemoryCallCounter()
        return
    connection = RedisConnection(REDIS_URL, prefix=redis_prefix)
    yield RedisCallCounter(connection)
    await connection.close()


async def test_calls_are_counted_in_a_window_per_key(counter):
    rate = Rate(2, 60)
    first = await counter.count("poll.vote:session:a", rate)
    assert first[0] == 1 and 59 < first[1] <= 60
    assert (await counter.count("poll.vote:session:a", rate))[0] == 2
    assert (await counter.count("poll.vote:session:a", rate))[0] == 3  # past the limit: refused
    assert (await counter.count("poll.vote:session:b", rate))[0] == 1  # another caller
    assert (await counter.count("poll.other:session:a", rate))[0] == 1  # another event


async def test_a_window_ends_on_time_and_refused_calls_do_not_lengthen_it(counter):
    rate = Rate(1, 1)
    await counter.count("k", rate)
    await asyncio.sleep(0.5)
    calls, left = await counter.count("k", rate)  # refused, halfway through the window
    assert calls == 2 and left <= 0.55
    await asyncio.sleep(left + 0.05)
    assert (await counter.count("k", rate))[0] == 1  # a new window


async def test_redis_keeps_counts_under_the_app_prefix_with_an_expiry(redis_prefix):
    connection = RedisConnection(REDIS_URL, prefix=redis_prefix)
    await RedisCallCounter(connection).count("poll.vote:user:7", Rate(3, 3600))
    await connection.close()
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = f"{redis_prefix}:rate:poll.vote:user:7"
    assert client.get(key) == "1" and 3_599_000 < client.pttl(key) <= 3_600_000
    client.close()


async def test_redis_down_counts_in_memory_with_one_warning(caplog):
    caplog.set_level(logging.INFO, logger="starmodel.rates")
    down = RedisConnection("redis://127.0.0.1:1/0", prefix="smratedown", timeout=0.5)
    counter = FallbackCallCounter(RedisCallCounter(down), MemoryCallCounter(), retry_every=0)
    results = [(await counter.count("k", Rate(5, 60)))[0] for _ in range(3)]
    assert results == [1, 2, 3]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "starmodel.rates"]
    assert len(warnings) == 1 and "counted per process" in warnings[0].getMessage()
    await down.close()


# --- over HTTP -------------------------------------------------------------------------------


def make_app(**options) -> StarModel:
    sm = StarModel(entities=[Poll], secret_key="test", **options)

    async def user_from_header(request):  # a stand-in for an auth plugin
        name = request.headers.get("x-test-user")
        return SimpleNamespace(id=name) if name else None

    sm.user_loader = user_from_header
    return sm


def client_of(sm: StarModel, state: dict | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsgiTransport(sm.app, state=state), base_url=BASE_URL)


async def stored_votes(sm: StarModel) -> list[int]:
    """The votes of every session's poll, as stored."""
    return [poll.votes for poll in await sm.services.repository_for(Poll).list(Poll)]


async def test_past_the_rate_an_event_answers_429_with_retry_after_and_changes_nothing():
    sm = make_app()
    async with client_of(sm) as client:
        for _ in range(3):
            assert (await post_event(client, "/poll/vote")).status_code == 200
        refused = await post_event(client, "/poll/vote")
        assert refused.status_code == 429
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        message = refused.headers["x-starmodel-error"]
        assert message.startswith("Too many calls of vote (at most 3/minute); try again in ")
        assert message in refused.text and 'data-variant="error"' in refused.text  # an error toast
        assert await stored_votes(sm) == [3]
        for _ in range(5):  # events without a rate are not limited
            assert (await post_event(client, "/poll/view")).status_code == 200
    async with client_of(sm) as other:  # another session has its own count
        assert (await post_event(other, "/poll/vote")).status_code == 200


async def test_a_signed_in_user_is_counted_across_sessions():
    sm = make_app()
    ann = {"X-Test-User": "ann"}
    async with client_of(sm) as laptop, client_of(sm) as phone:
        for client in (laptop, phone, laptop):
            assert (await post_event(client, "/poll/vote", headers=ann)).status_code == 200
        assert (await post_event(phone, "/poll/vote", headers=ann)).status_code == 429
        # the same session as a visitor, or as another user, has its own count
        assert (await post_event(phone, "/poll/vote")).status_code == 200
        assert (await post_event(phone, "/poll/vote", headers={"X-Test-User": "bob"})).status_code == 200


@contextlib.asynccontextmanager
async def running(sm: StarModel) -> AsyncIterator[httpx.AsyncClient]:
    async with AsgiLifespan(sm.app) as lifespan, client_of(sm, lifespan.state) as client:
        yield client


async def test_two_apps_share_the_count_through_redis(redis_prefix):
    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    async with running(make_app(**options)) as one, running(make_app(**options)) as two:
        await post_event(one, "/poll/view")  # the session cookie, taken to the other process
        two.cookies = one.cookies
        for client in (one, two, one):
            assert (await post_event(client, "/poll/vote")).status_code == 200
        assert (await post_event(two, "/poll/vote")).status_code == 429
        assert (await post_event(one, "/poll/vote")).status_code == 429
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = [key async for key in client.scan_iter(f"{redis_prefix}:rate:*")]
    await client.aclose()
    assert len(keys) == 1 and keys[0].startswith(f"{redis_prefix}:rate:poll.vote:session:")


# --- two server processes ----------------------------------------------------------------------

APP = textwrap.dedent('''
    from starmodel import Entity, StarModel, event

    class Poll(Entity):
        votes: int = 0

        @event(rate="3/minute")
        def vote(self):
            self.votes += 1

    sm = StarModel(entities=[Poll])
    app = sm.app
''')


def serve(tmp_path: Path, port: int, prefix: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SECRET_KEY": "rate-test", "STARMODEL_ASSETS": "cdn", "REDIS_URL": REDIS_URL,
           "STARMODEL_REDIS_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", str(port), "--no-reload"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_answering(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited early:\n{proc.stdout.read() if proc.stdout else ''}"
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/_starmodel/static/starmodel.js", timeout=1.0)
            return
        time.sleep(0.1)
    raise AssertionError(f"the server on port {port} did not answer")


def test_two_server_processes_share_the_count_through_redis(tmp_path, redis_prefix):
    (tmp_path / "app.py").write_text(APP)
    ports = [free_port(), free_port()]
    procs = [serve(tmp_path, port, redis_prefix) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_answering(port, proc)
        # one browser (one cookie jar: cookies ignore the port) whose calls land on either process
        with httpx.Client(timeout=10) as browser:
            def vote(port: int) -> httpx.Response:
                base = f"http://127.0.0.1:{port}"
                return browser.post(f"{base}/poll/vote", headers={**DATASTAR, "Origin": base}, json={})

            assert [vote(port).status_code for port in (ports[0], ports[1], ports[0])] == [200, 200, 200]
            refused = vote(ports[1])
            assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
            assert vote(ports[0]).status_code == 429
    finally:
        outputs = []
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                outputs.append(proc.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                proc.kill()
                outputs.append(proc.communicate()[0])
    assert all("Traceback" not in out for out in outputs), outputs

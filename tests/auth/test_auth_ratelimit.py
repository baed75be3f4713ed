"""Failed sign-ins are limited per client address and per email: one suite for the memory and
the Redis counters, sign-in answering 429, two apps sharing the count through the real Redis,
and Redis going away without an error."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
import redis.asyncio as aioredis
from auth_kit import PASSWORD, Browser, make_app, patched, redirect_target, running

from starmodel.adapters.driven.stores.redis import RedisConnection
from starmodel.contrib.auth import RateLimit
from starmodel.contrib.auth.ratelimit import (
    FallbackAttempts,
    MemoryAttempts,
    RedisAttempts,
    address_key,
    email_key,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_prefix():
    """A prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"smauthtest{secrets.token_hex(4)}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def attempts(request, redis_prefix):
    limit = RateLimit(attempts=3, window=0.5)
    if request.param == "memory":
        yield MemoryAttempts(limit)
        return
    connection = RedisConnection(REDIS_URL, prefix=redis_prefix)
    yield RedisAttempts(limit, connection)
    await connection.close()


async def test_blocked_after_the_limit_until_the_window_ends(attempts):
    keys = ["address:10.0.0.1", "email:abc"]
    for _ in range(2):
        await attempts.fail(keys)
    assert await attempts.retry_after(keys) is None
    await attempts.fail(keys)
    wait = await attempts.retry_after(keys)
    assert wait == 1  # whole seconds, at least one
    assert await attempts.retry_after(["address:10.0.0.2"]) is None  # other keys are free
    await asyncio.sleep(0.6)
    assert await attempts.retry_after(keys) is None


async def test_clearing_one_key_keeps_the_others(attempts):
    for _ in range(3):
        await attempts.fail(["address:a", "email:e"])
    await attempts.clear("email:e")
    assert await attempts.retry_after(["email:e"]) is None
    assert await attempts.retry_after(["address:a"]) == 1


async def test_sign_in_answers_429_with_retry_after_and_checks_nothing(tmp_path):
    sm, auth = make_app(tmp_path, rate_limit=RateLimit(attempts=3, window=300))
    async with running(sm):
        await auth.create_user("victim@example.com", PASSWORD)
        browser = Browser(sm)
        for _ in range(3):
            assert (await browser.login("victim@example.com", "guess guess")).status_code == 400
        blocked = await browser.login("victim@example.com", PASSWORD)  # even the right one
        assert blocked.status_code == 429
        assert 240 < int(blocked.headers["retry-after"]) <= 300
        assert "Too many failed attempts; try again in 5 minutes" in patched(blocked)
        assert redirect_target(blocked) is None
        other = await browser.login("other@example.com", "whatever1")  # same address: blocked too
        assert other.status_code == 429
        await browser.aclose()


async def test_a_success_clears_the_email_count(tmp_path):
    sm, auth = make_app(tmp_path, rate_limit=RateLimit(attempts=3, window=300))
    async with running(sm):
        await auth.create_user("me@example.com", PASSWORD)
        browser = Browser(sm)
        await browser.login("me@example.com", "typo typo")
        await browser.login("me@example.com", "typo typo")
        assert (await browser.login("me@example.com")).status_code == 200
        assert email_key("me@example.com") not in auth.attempts._counts
        assert auth.attempts._counts[address_key("127.0.0.1")][0] == 2  # the address's count stays
        await browser.aclose()


async def test_probing_emails_at_registration_counts_for_the_address(tmp_path):
    sm, auth = make_app(tmp_path, rate_limit=RateLimit(attempts=2, window=300))
    async with running(sm):
        await auth.create_user("a@example.com", PASSWORD)
        await auth.create_user("b@example.com", PASSWORD)
        browser = Browser(sm)
        assert (await browser.register("a@example.com")).status_code == 422
        assert (await browser.register("b@example.com")).status_code == 422
        assert (await browser.register("c@example.com")).status_code == 429
        await browser.aclose()


async def test_two_apps_share_the_count_through_redis(tmp_path, redis_prefix):
    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix, "rate_limit": RateLimit(attempts=4)}
    one, auth = make_app(tmp_path, **options)
    two, _ = make_app(tmp_path, **options)  # a second server process on the same database
    async with running(one), running(two):
        await auth.create_user("shared@example.com", PASSWORD)
        first, second = Browser(one), Browser(two)
        for browser in (first, second, first, second):
            assert (await browser.login("shared@example.com", "nope nope")).status_code == 400
        assert (await first.login("shared@example.com")).status_code == 429
        assert (await second.login("shared@example.com")).status_code == 429
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        keys = sorted([key async for key in client.scan_iter(f"{redis_prefix}:auth:fail:*")])
        await client.aclose()
        assert len(keys) == 2 and "shared@example.com" not in " ".join(keys)  # address + digest
        for browser in (first, second):
            await browser.aclose()


async def test_redis_down_falls_back_to_memory_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="starmodel.auth")
    limit = RateLimit(attempts=2, window=300)
    down = RedisConnection("redis://127.0.0.1:1/0", prefix="smauthdown")
    attempts = FallbackAttempts(RedisAttempts(limit, down), MemoryAttempts(limit), retry_every=0)
    for _ in range(2):
        await attempts.fail(["address:x"])
    assert await attempts.retry_after(["address:x"]) == 300
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "starmodel.auth"]
    assert len(warnings) == 1 and "failed sign-ins are counted per process" in warnings[0].getMessage()
    outages = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "starmodel.services"]
    assert len(outages) == 1 and "Redis at 127.0.0.1:1 cannot be reached" in outages[0].getMessage()
    await down.close()


async def test_sign_in_with_redis_down_still_works(tmp_path):
    sm, auth = make_app(tmp_path, redis_url="redis://127.0.0.1:1/0", rate_limit=RateLimit(attempts=2))
    async with running(sm):
        await auth.create_user("calm@example.com", PASSWORD)
        browser = Browser(sm)
        assert (await browser.login("calm@example.com", "bad bad bad")).status_code == 400
        assert (await browser.login("calm@example.com", "bad bad bad")).status_code == 400
        assert (await browser.login("calm@example.com")).status_code == 429  # counted in memory
        await browser.aclose()

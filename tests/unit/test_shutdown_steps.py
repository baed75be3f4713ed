"""A stop is bounded even when a task refuses to end: shutdown steps get a share of one budget,
and waiting for a cancelled task never hides the waiter's own cancellation."""

from __future__ import annotations

import asyncio
import time

from starmodel.adapters.driving.web.shutdown import run_shutdown
from starmodel.app.jobs import JobRunner
from starmodel.core.tasks import cancel_and_wait

RELEASE_AFTER = 2.0
"""Seconds a stubborn task ignores cancellation (then it ends, so the test's loop can close)."""


async def _stubborn() -> None:
    """A task that ignores being cancelled for a while (a driver stuck in a cleanup, say)."""
    until = time.monotonic() + RELEASE_AFTER
    while time.monotonic() < until:
        try:
            await asyncio.sleep(until - time.monotonic())
        except asyncio.CancelledError:
            continue


async def test_waiting_for_a_stubborn_task_gives_up_and_says_so():
    task = asyncio.create_task(_stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await cancel_and_wait([task, None], within=0.2) is False
    assert time.monotonic() - started < 1.0


async def test_the_waiters_own_cancellation_is_not_swallowed():
    task = asyncio.create_task(_stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    try:
        async with asyncio.timeout(0.2):
            await cancel_and_wait([task], within=30.0)
    except TimeoutError:
        pass
    else:  # pragma: no cover - the failure this test is about
        raise AssertionError("the timeout around the wait was swallowed")
    assert time.monotonic() - started < 1.0


async def test_a_stopping_job_runner_is_bounded_by_its_callers_timeout():
    runner, released = JobRunner(), False

    async def run() -> None:
        if not released:
            await _stubborn()

    runner.add("stuck", 0.01, run)
    await runner.start()
    await asyncio.sleep(0.05)  # the job is inside its stubborn run
    started = time.monotonic()
    try:
        async with asyncio.timeout(0.3):
            await runner.stop()
    except TimeoutError:
        pass
    assert time.monotonic() - started < 1.5
    released = True  # the next run returns at once: a second stop ends the job
    await asyncio.sleep(RELEASE_AFTER)
    await runner.stop()


async def test_shutdown_steps_share_one_budget_and_each_still_runs(caplog):
    ran: list[str] = []

    async def stuck() -> None:
        ran.append("stuck")
        await _stubborn()

    async def close() -> None:
        ran.append("close")

    started = time.monotonic()
    await run_shutdown([stuck, close], budget=0.3)
    elapsed = time.monotonic() - started
    assert ran == ["stuck", "close"]  # the step after the stuck one still ran
    assert elapsed < 1.5
    assert "still running" in caplog.text

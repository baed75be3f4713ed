"""Periodic jobs on their own: ticks, no overlap, errors that do not stop the job, claims."""

import asyncio

import pytest

from starmodel.app.jobs import JobRunner


async def test_a_job_runs_every_interval_until_stopped():
    runner = JobRunner()
    calls: list[float] = []

    async def tick() -> None:
        calls.append(asyncio.get_running_loop().time())

    runner.add("tick", 0.05, tick)
    await runner.start()
    await asyncio.sleep(0.33)
    await runner.stop()
    count = len(calls)
    assert 4 <= count <= 8
    await asyncio.sleep(0.12)
    assert len(calls) == count  # stopped means stopped


async def test_errors_are_logged_and_the_job_goes_on(caplog):
    runner = JobRunner()
    attempts = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) % 2:
            raise RuntimeError("sensor offline")

    job = runner.add("flaky", 0.04, flaky)
    await runner.start()
    await asyncio.sleep(0.3)
    await runner.stop()
    assert job.failures >= 2 and job.runs >= 2
    assert job.last_error == "RuntimeError: sensor offline"
    assert "periodic job flaky failed" in caplog.text


async def test_runs_never_overlap_and_missed_ticks_are_skipped():
    runner = JobRunner()
    running = 0
    most = 0
    starts = 0

    async def slow() -> None:
        nonlocal running, most, starts
        starts += 1
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.13)  # longer than two intervals
        running -= 1

    runner.add("slow", 0.05, slow)
    await runner.start()
    await asyncio.sleep(0.5)
    await runner.stop()
    assert most == 1
    assert 2 <= starts <= 4  # not the ten ticks that passed


async def test_only_claimed_ticks_run():
    claimed: set[tuple[str, int]] = set()

    async def claim(name: str, tick: int, interval: float) -> bool:
        if (name, tick) in claimed:
            return False
        claimed.add((name, tick))
        return True

    first, second = JobRunner(claim), JobRunner(claim)  # two processes
    runs: list[str] = []

    async def on_first() -> None:
        runs.append("first")

    async def on_second() -> None:
        runs.append("second")

    first.add("feed", 0.05, on_first)
    second.add("feed", 0.05, on_second)
    await first.start()
    await second.start()
    await asyncio.sleep(0.32)
    await first.stop()
    await second.stop()
    assert len(runs) == len(claimed)  # each tick ran once, in one of the two


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_bad_intervals_are_refused(interval):
    with pytest.raises(ValueError, match="positive number of seconds"):
        JobRunner().add("bad", interval, lambda: None)  # type: ignore[arg-type, return-value]


def test_names_are_unique():
    runner = JobRunner()

    async def nothing() -> None: ...

    runner.add("one", 1, nothing)
    with pytest.raises(ValueError, match="exists already"):
        runner.add("one", 1, nothing)

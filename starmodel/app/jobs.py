"""Periodic jobs: a function run every N seconds for as long as the app runs.

Each job runs in a task of its own, started with the app and stopped with it. Runs of one job
never overlap: a run that takes longer than the interval makes the job skip the ticks it
missed. An exception is logged with its traceback and the job goes on at its next tick.

Ticks are aligned on the wall clock (``floor(time / interval)``), so every server process
agrees on them; with a ``claim`` function (a Redis ``SET NX`` in the Redis adapter) only the
process that claims a tick runs it, and a job runs once per tick however many processes serve
the app.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starmodel.core.clock import REAL_CLOCK, Clock
from starmodel.core.tasks import cancel_and_wait

__all__ = ["Claim", "JobRunner", "PeriodicJob"]

log = logging.getLogger("starmodel.jobs")
Claim = Callable[[str, int, float], Awaitable[bool]]
"""``claim(job name, tick number, interval)``: ``True`` if this process runs that tick."""


@dataclass
class PeriodicJob:
    """``run()`` every ``interval`` seconds."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    runs: int = 0
    failures: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class JobRunner:
    """Starts and stops the app's periodic jobs (see the module docstring)."""

    def __init__(self, claim: Claim | None = None, clock: Clock = REAL_CLOCK) -> None:
        self.jobs: dict[str, PeriodicJob] = {}
        self.claim = claim
        self.clock = clock
        self.started = False

    def add(self, name: str, interval: float, run: Callable[[], Awaitable[object]]) -> PeriodicJob:
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"job {name!r}: the interval must be a positive number of seconds")
        if name in self.jobs:
            raise ValueError(f"a periodic job named {name!r} exists already")
        job = self.jobs[name] = PeriodicJob(name, float(interval), run)
        if self.started:
            self._start(job)
        return job

    async def start(self) -> None:
        self.started = True
        for job in self.jobs.values():
            self._start(job)

    async def stop(self) -> None:
        self.started = False
        if not await cancel_and_wait([job.task for job in self.jobs.values()]):
            log.warning("periodic jobs still running 2 s after they were cancelled: left behind")
        for job in self.jobs.values():
            job.task = None

    def _start(self, job: PeriodicJob) -> None:
        if job.task is None or job.task.done():
            loop = asyncio.get_running_loop()
            job.task = loop.create_task(self._loop(job), name=f"starmodel-job-{job.name}")

    async def _loop(self, job: PeriodicJob) -> None:
        tick = math.floor(self.clock.now() / job.interval)
        while True:
            tick += 1
            await self.clock.sleep(max(0.0, tick * job.interval - self.clock.now()))
            if self.claim is not None:
                try:
                    if not await self.claim(job.name, tick, job.interval):
                        continue  # another process runs this tick
                except Exception as exc:  # the claim store is down: run here rather than not at all
                    log.warning("periodic job %s: cannot claim tick (%s); running it here", job.name, exc)
            try:
                await job.run()
                job.runs += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                job.failures += 1
                job.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("periodic job %s failed (it runs again at its next tick)", job.name)
            behind = math.floor(self.clock.now() / job.interval)
            if behind > tick:  # the run took longer than the interval: skip what it missed
                tick = behind

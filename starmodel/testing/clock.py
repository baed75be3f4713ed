"""A clock tests move by hand: ``starmodel.sleep`` in events and periodic jobs wait on it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

__all__ = ["FakeClock"]


class FakeClock:
    """Time that passes only when ``advance`` is called.

    ``await clock.sleep(s)`` waits until the clock has been moved ``s`` seconds on;
    ``await clock.advance(s)`` moves it, waking the sleepers due on the way in order of their
    deadlines, and lets each woken task run until it sleeps on the clock again or ends (up to
    ``settle_timeout`` real seconds, for the I/O it does meanwhile).

    Args:
        start: the wall time it starts at (default: now).
        settle_timeout: how long, in real seconds, ``advance`` lets a woken task run at most.
    """

    def __init__(self, start: float | None = None, *, settle_timeout: float = 2.0) -> None:
        self._now = time.time() if start is None else start
        self.settle_timeout = settle_timeout
        self._sleepers: list[tuple[float, int, asyncio.Future[None], asyncio.Task[object] | None]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    @property
    def sleeping(self) -> int:
        """How many sleeps are waiting for the clock to move."""
        return sum(1 for *_, waiter, _task in self._sleepers if not waiter.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + seconds, next(self._order), waiter, asyncio.current_task())
        heapq.heappush(self._sleepers, entry)
        await waiter

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, waking what is due on the way (see the class)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        target = self._now + seconds
        await self._let_run(None)  # what was started just before gets to its first sleep
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, waiter, task = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if waiter.done():  # its sleeper was cancelled meanwhile
                continue
            waiter.set_result(None)
            await self._let_run(task)
        self._now = target

    async def _let_run(self, task: asyncio.Task[object] | None) -> None:
        """Let the loop run until ``task`` sleeps on the clock again or ends (a few turns of
        the loop when there is no task to follow)."""
        for _ in range(5):
            await asyncio.sleep(0)
        if task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while not task.done() and not self._asleep(task) and loop.time() < deadline:
            await asyncio.sleep(0.001)
        for _ in range(5):  # what it handed on (deliveries, callbacks) runs too
            await asyncio.sleep(0)

    def _asleep(self, task: asyncio.Task[object]) -> bool:
        """Whether ``task`` waits on one of the clock's sleeps: the sleep is registered and
        something waits on it (a long-running event's runner first commits what the body did
        before the sleep, and only then waits)."""
        return any(
            t is task and not waiter.done() and getattr(waiter, "_callbacks", True)
            for *_, waiter, t in self._sleepers
        )

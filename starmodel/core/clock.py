"""Time for event bodies and periodic jobs, through a clock the testing kit can replace."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Protocol

__all__ = ["REAL_CLOCK", "Clock", "RealClock", "current_clock", "sleep"]


class Clock(Protocol):
    """Where time comes from for ``starmodel.sleep`` and periodic jobs."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The event loop's clock."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_CLOCK = RealClock()
current_clock: ContextVar[Clock | None] = ContextVar("starmodel_clock", default=None)
"""The clock of the app running the current event (set by its runner; ``None``: the real one)."""


async def sleep(seconds: float) -> None:
    """``await starmodel.sleep(s)``: ``asyncio.sleep`` through the app's clock, which the
    testing kit can replace (``client.advance(s)``) so that tests do not wait for real."""
    await (current_clock.get() or REAL_CLOCK).sleep(seconds)

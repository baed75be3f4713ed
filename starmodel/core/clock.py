"""Time for event bodies and periodic jobs, through a clock the testing kit can replace.

The runner of an event sets ``current_clock`` to its app's clock while the event's body runs,
so ``await starmodel.sleep(s)`` in a body sleeps on that clock; periodic jobs (``sm.every``)
wait on it too. In production it is the real clock; a test may give the app a fake one and
move it forward at will (``EventClient(sm, fake_clock=True)``, ``client.advance(s)``).
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Protocol

__all__ = ["REAL_CLOCK", "Clock", "RealClock", "current_clock", "sleep"]


class Clock(Protocol):
    """Where time comes from for ``starmodel.sleep`` and periodic jobs."""

    def now(self) -> float:
        """Seconds since the epoch (wall time: periodic jobs align their ticks on it)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The real time: ``time.time()`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL_CLOCK = RealClock()
current_clock: ContextVar[Clock | None] = ContextVar("starmodel_clock", default=None)
"""The clock of the app running the current event (set by its runner; ``None``: the real one)."""


async def sleep(seconds: float) -> None:
    """``await starmodel.sleep(s)`` in an event: ``asyncio.sleep`` on the app's clock, so that
    tests can move time forward instead of waiting (``client.advance(s)``)."""
    await (current_clock.get() or REAL_CLOCK).sleep(seconds)

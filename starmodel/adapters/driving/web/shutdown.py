"""A clean stop: what a server process does between its stop signal and its exit.

At the signal (``begin``): every live stream ends with an SSE ``retry:`` hint, spread over a
second or two, so its tab reconnects to another process (the proxy sends it there: this one
no longer accepts connections, and its readiness check answers 503); requests already
running go on. When the server has stopped taking requests (``drain``, the first step of the
app's shutdown): background runs may finish until the grace period, counted from the signal,
is over; those still going are then cancelled as their cancel button would (their
uncommitted step rolled back, their viewers told), and given a moment to say so. Then the
app's other shutdown steps close the jobs, stores and bus, each within a bound.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

from starmodel.adapters.driving.live.stream import RETRY_SPREAD, LiveHub
from starmodel.app.dispatcher import Dispatcher

__all__ = ["CANCEL_WAIT", "GracefulStop", "begin_stop_everywhere", "bounded_step", "run_shutdown"]

log = logging.getLogger("starmodel.shutdown")
CANCEL_WAIT = 2.0
"""Seconds cancelled background runs get to roll back and tell their viewers."""
STEP_FLOOR = 0.5
"""Seconds every shutdown step gets, even when the steps before it used up the budget."""
_STOPS: weakref.WeakSet[GracefulStop] = weakref.WeakSet()


def begin_stop_everywhere() -> None:
    """The process was asked to stop: begin the clean stop of every app it serves (servers
    call it from their signal handler)."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    for stop in list(_STOPS):
        if loop is None:
            stop.begin()
        else:  # a signal handler runs between two steps of the loop: act on the loop's turn
            loop.call_soon_threadsafe(stop.begin)


class GracefulStop:
    """The clean stop of one app (see the module docstring).

    Args:
        hub: the app's live streams.
        dispatcher: runs the app's events (and knows its background runs).
        grace: seconds background runs may go on after the stop signal.
    """

    def __init__(self, hub: LiveHub, dispatcher: Dispatcher, grace: float) -> None:
        self.hub = hub
        self.dispatcher = dispatcher
        self.grace = grace
        self.began: float | None = None  # time.monotonic() of the signal
        _STOPS.add(self)

    @property
    def stopping(self) -> bool:
        return self.began is not None

    def begin(self) -> None:
        """End the live streams with a reconnect hint; refuse new ones. Idempotent."""
        if self.began is None:
            self.began = time.monotonic()
            log.info("stopping: live streams told to reconnect elsewhere; running events may "
                     "finish within %g s", self.grace)
        self.hub.close_all(retry=RETRY_SPREAD)

    async def drain(self) -> None:
        """Let background runs finish until the grace period ends, then cancel the others."""
        self.begin()
        assert self.began is not None
        running = self.dispatcher.background_tasks()
        remaining = self.grace - (time.monotonic() - self.began)
        if running and remaining > 0:
            await asyncio.wait(running, timeout=remaining)
        cancelled = self.dispatcher.background_tasks()
        if self.dispatcher.cancel_background():
            log.warning("%d background run(s) still going %g s after the stop signal: cancelled",
                        len(cancelled), self.grace)
            await asyncio.wait(cancelled, timeout=CANCEL_WAIT)


async def bounded_step(step: Callable[[], Awaitable[object]], limit: float) -> None:
    """Run one shutdown step within ``limit`` seconds; one that takes longer, or fails, is
    logged and left behind, so that a stuck close never keeps the process from exiting. The
    step runs as a task of its own, so even one that swallows its cancellation is left."""
    task = asyncio.ensure_future(step())
    done, _ = await asyncio.wait({task}, timeout=max(limit, 0.0))
    if not done:
        task.cancel()
        log.error("shutdown step %s still running after %g s: left behind", _name(step), limit)
        return
    exc = None if task.cancelled() else task.exception()
    if exc is not None:  # one line, so a stop's log stays readable
        log.error("shutdown step %s failed: %s: %s", _name(step), type(exc).__name__, exc)


async def run_shutdown(steps: list[Callable[[], Awaitable[object]]], budget: float) -> None:
    """Run the app's shutdown steps in order within ``budget`` seconds in all: each gets what
    is left of it (and at least ``STEP_FLOOR``). Should the event loop itself be blocked (a step
    that never yields), a dump of every thread's stack reaches stderr once the budget is past,
    so the log says where the stop is stuck."""
    deadline = time.monotonic() + budget
    faulthandler.dump_traceback_later(budget + STEP_FLOOR * len(steps) + 1, exit=False)
    try:
        for step in steps:
            await bounded_step(step, max(deadline - time.monotonic(), STEP_FLOOR))
    finally:
        faulthandler.cancel_dump_traceback_later()


def _name(step: Callable[..., object]) -> str:
    return getattr(step, "__qualname__", repr(step))

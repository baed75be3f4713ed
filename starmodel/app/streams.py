"""Streaming events: an ``async def`` event with ``yield``, read by the calling request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starmodel.app.event_call import EventCall, OutputCheck, Units
from starmodel.app.stretches import Stretches

__all__ = ["start_stream"]

_DONE = object()


async def start_stream(
    call: EventCall, units: Units, check: OutputCheck | None, running: set[asyncio.Task[None]]
) -> AsyncIterator[list[Any]]:
    """Run a streaming event in a task of its own, up to its first wait.

    The task owns the entity while a stretch runs (so it is released whatever the reader
    does); an error before the first wait is raised here, like any other event's. The body
    goes on past a ``yield`` only when the reader asks for the next step, as if the reader ran
    the generator itself; a reader that stops reading stops the event.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waited: list[Any] = []  # what stretches ending at an await committed: sent with the next step

    async def emit(outputs: list[Any], at_yield: bool) -> None:
        waited.extend(outputs)
        if not at_yield:
            return
        wanted = asyncio.Event()
        queue.put_nowait((list(waited), wanted))
        waited.clear()
        await wanted.wait()

    def flush() -> None:
        if waited:
            queue.put_nowait((list(waited), None))
            waited.clear()

    async def run() -> None:
        try:
            await Stretches(call, units, emit, started, check).run()
        except Exception as exc:
            if not started.done():
                started.set_exception(exc)
                return
            flush()
            queue.put_nowait(exc)
            return
        flush()
        queue.put_nowait(_DONE)

    task = asyncio.create_task(run())
    running.add(task)
    task.add_done_callback(running.discard)
    try:
        await asyncio.shield(started)
    except BaseException:
        if not task.done():
            task.cancel()
        raise
    return _drain(queue, task)


async def _drain(queue: asyncio.Queue[Any], task: asyncio.Task[None]) -> AsyncIterator[list[Any]]:
    """The steps of a running streaming event; a caller that stops reading stops the event
    (its current, uncommitted stretch is rolled back)."""
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            outputs, wanted = item
            if outputs:
                yield outputs
            if wanted is not None:
                wanted.set()
    finally:
        if not task.done():
            task.cancel()

"""Ending asyncio tasks without swallowing the caller's own cancellation.

``task.cancel()`` followed by ``with suppress(CancelledError): await task`` has a trap: if the
*caller* is cancelled while it waits (a shutdown step's time is up), the suppress eats that
cancellation too, and the caller goes on waiting for a task that may never end.
``cancel_and_wait`` waits with ``asyncio.wait``, which neither raises the tasks' errors nor
hides a cancellation of the caller, and gives up after ``within`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | None], within: float = 2.0) -> bool:
    """Cancel ``tasks`` (``None`` entries are skipped) and wait up to ``within`` seconds for
    them to end. Returns whether every one has ended; the caller's own cancellation propagates."""
    pending = {task for task in tasks if task is not None and not task.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return True
    _, still_running = await asyncio.wait(pending, timeout=within)
    return not still_running

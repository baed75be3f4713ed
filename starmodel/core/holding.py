"""What a background or streaming event's body holds while it runs.

Such a body runs in stretches: between two waits (``await`` of I/O, ``sleep``, a ``yield``)
its entity is held and ``self`` is the entity's current state; while it waits, nothing is
held and other events change the entity. ``async with self.hold():`` keeps the entity held
across the waits inside the block, for work that must be atomic with them.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from types import TracebackType
from typing import Protocol

__all__ = ["Hold", "Stepper", "current_stepper"]


class Stepper(Protocol):
    """The runner driving the current body stretch by stretch (``app.stretches``)."""

    holding: int
    """How many ``hold()`` blocks are open: while above 0, waits do not release the entity."""


current_stepper: ContextVar[Stepper | None] = ContextVar("starmodel_stepper", default=None)


class Hold:
    """``async with entity.hold():`` the entity stays held (and ``self`` current) across the
    waits inside the block; what the block changed is committed when it ends. Outside a
    background or streaming event (a plain event holds its entity throughout) it does nothing."""

    __slots__ = ("_stepper",)

    def __init__(self) -> None:
        self._stepper: Stepper | None = None

    async def __aenter__(self) -> None:
        self._stepper = current_stepper.get()
        if self._stepper is not None:
            self._stepper.holding += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stepper, self._stepper = self._stepper, None
        if stepper is None:
            return
        stepper.holding -= 1
        if stepper.holding == 0 and exc_type is None:
            await asyncio.sleep(0)  # a wait: the runner commits the block and releases the entity

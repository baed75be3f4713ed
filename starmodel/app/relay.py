"""A plain event's place in the line of events on its entity, in this process.

Events on one entity take turns (``app.locks``). Each leaves the next what its commit stored
(``Handed``), so the next need not read it again. When the store queues the event's write
(``EntityRepository.read_optimistically``), the event passes its turn on at once, with the row
its write will store: the next event runs meanwhile, and the store may send both writes as one.
So that this changes nothing anybody sees:

- an event publishes its changes only after the event before it published (tabs hear of the
  changes in the order they were made);
- an event that started from a row still on its way to the store, and that fails or writes
  nothing, waits for that row: if it was never stored, the event is re-run instead of
  answered (its answer would speak of a state that never existed). One that writes is
  refused by the store in that case (a ``ConcurrencyError``: it is re-run too).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starmodel.app.locks import Turn
from starmodel.app.uow import UnitOfWork
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError
from starmodel.core.ports import Handed

__all__ = ["Relay"]


class Relay:
    """One attempt of a plain event in its entity's turn (see the module docstring).

    Args:
        turn: the entity's turn, held.
        first: the event's first attempt (re-runs read the general way, and hand nothing on
            before they are done).
    """

    def __init__(self, turn: Turn, first: bool) -> None:
        self.turn = turn
        self.taken: Handed | None = turn.handed if first else None
        turn.handed = None  # taken, or stale: a failed attempt leaves nothing behind
        self._first = first
        before = turn.published  # the last event that passed its turn on before publishing
        if before is not None and before.done():
            before = turn.published = None
        self._before = before
        self._published: asyncio.Future[None] | None = None  # made if this one passes on too
        self._passed = False

    def join(self, uow: UnitOfWork) -> None:
        """Set up ``uow`` for this attempt."""
        uow.optimistic = self._first
        uow.publish_after = self._before
        if self._first:
            uow.on_queued = self._pass_on

    def _pass_on(self, handed: Handed) -> None:
        """The write is queued: let the next event in now, from the row it will store (and
        publish after this one)."""
        if not self._passed:
            self._passed = True
            self.turn.handed = handed
            self._published = self.turn.published = asyncio.get_running_loop().create_future()
            self.turn.pass_on()

    async def check_start(self, uow: UnitOfWork) -> None:
        """Raise ``ConcurrencyError`` if the event started from a row that was never stored
        (waiting for it to be settled if need be)."""
        taken = uow.took
        if taken is not None and taken.settled is not None and not await taken.settled():
            raise ConcurrencyError("the state this event started from was never stored")

    def done(self, uow: UnitOfWork, target: Any) -> None:
        """The attempt succeeded: leave the next event the entity as committed (if the turn is
        still this event's), and let it publish."""
        if not self._passed and isinstance(target, Entity):
            self.turn.handed = uow.handed(target)
        self._finish()

    def failed(self) -> None:
        """The attempt failed: the next event may publish once the one before this did."""
        self._finish()

    def _finish(self) -> None:
        before, mine = self._before, self._published
        if mine is None:
            return
        if before is None or before.done():
            if not mine.done():
                mine.set_result(None)
        else:
            before.add_done_callback(lambda _: None if mine.done() else mine.set_result(None))

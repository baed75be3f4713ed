"""Background events: ``@event(background=True)`` answers once its first stretch is committed
and runs on in a task of its own; every stretch reaches the entity's viewers through the bus.

``exclusive=True`` allows one run per entity at a time in every process: a start while one
runs is refused (409), and ``$<namespace>._running.<event>`` tells pages whether one runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from starmodel.app.event_call import EventCall, OutputCheck, Units
from starmodel.app.stretches import Stretches
from starmodel.core.actions import PatchSignals, toast
from starmodel.core.errors import AlreadyRunning, StarModelError
from starmodel.core.messages import CancelRequested, EventOutputs
from starmodel.core.ports import EventBus

__all__ = ["BackgroundRuns", "InProcessRunClaims", "RunClaims", "running_signal"]

log = logging.getLogger("starmodel.dispatcher")
Slot = tuple[str, str, str]


class RunClaims(Protocol):
    """Who runs an exclusive background event: one claim per ``(namespace, key, event)``,
    valid in every process that shares the claims (a Redis key with an expiry, renewed while
    the run goes on; a set in this process otherwise)."""

    async def claim(self, slot: Slot) -> bool:
        """Take the slot; ``False`` if a run holds it already."""
        ...

    async def renew(self, slot: Slot) -> None:
        """Still running: keep the claim from expiring."""
        ...

    async def release(self, slot: Slot) -> None: ...

    async def held(self, slot: Slot) -> bool:
        """Whether a run holds the slot now."""
        ...


class InProcessRunClaims:
    """Claims for one server process (no Redis)."""

    renew_every = 0.0  # nothing expires

    def __init__(self) -> None:
        self._held: set[Slot] = set()

    async def claim(self, slot: Slot) -> bool:
        if slot in self._held:
            return False
        self._held.add(slot)
        return True

    async def renew(self, slot: Slot) -> None:
        return None

    async def release(self, slot: Slot) -> None:
        self._held.discard(slot)

    async def held(self, slot: Slot) -> bool:
        return slot in self._held


def running_signal(namespace: str, event: str, running: bool) -> PatchSignals:
    """``$<namespace>._running.<event>``: a local signal pages can bind (``data-attr:disabled``)."""
    return PatchSignals({namespace: {"_running": {event: running}}})


class BackgroundRuns:
    """Starts, tracks and cancels this process's background runs.

    Args:
        units: the stores' units of work and the entities' turns.
        bus: where progress, cancel requests and ``_running`` changes are published.
        claims: exclusive runs' claims (shared between processes with Redis).
        renew_every: seconds between renewals of an exclusive run's claim (0: never).
    """

    def __init__(
        self,
        units: Units,
        bus: Callable[[], EventBus],
        claims: RunClaims | None = None,
        renew_every: float = 0.0,
    ) -> None:
        self.units = units
        self.bus = bus
        self.claims: RunClaims = claims or InProcessRunClaims()
        self.renew_every = renew_every
        self.tasks: set[asyncio.Task[None]] = set()
        self._by_slot: dict[Slot, set[asyncio.Task[None]]] = {}
        self._cancelling: set[asyncio.Task[None]] = set()

    async def start(self, call: EventCall, check: OutputCheck | None) -> None:
        """Run ``call`` in a task of its own; return once its first stretch is committed, or
        raise what refused it (policy, validation, an exclusive run going) with nothing done."""
        spec = call.spec
        if spec.exclusive and not await self.claims.claim(call.slot):
            raise AlreadyRunning(f"{spec.label} is running already; wait until it ends")
        # the calling tab gets the changes through its live stream like every other tab
        call = replace(call, ctx=replace(call.ctx, tab_id=None, entity=None))
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(call, check, started))
        self.tasks.add(task)
        self._by_slot.setdefault(call.slot, set()).add(task)
        task.add_done_callback(lambda done: self._forget(call.slot, done))
        await asyncio.shield(started)

    def _forget(self, slot: Slot, done: asyncio.Task[None]) -> None:
        self.tasks.discard(done)
        self._cancelling.discard(done)
        tasks = self._by_slot.get(slot)
        if tasks is not None:
            tasks.discard(done)
            if not tasks:
                del self._by_slot[slot]

    async def _run(self, call: EventCall, check: OutputCheck | None, started: asyncio.Future[None]) -> None:
        options = call.entity_cls.options()
        session = call.ctx.session_id if options.scope == "session" else None

        async def show(outputs: list[Any]) -> None:
            # state changes travel as EntityChanged; what the event showed goes to its viewers
            if outputs:
                fact = EventOutputs(
                    options.namespace, call.key, options.scope, outputs, session, spec.selector, spec.mode
                )
                await self.bus().publish(fact)

        async def emit(outputs: list[Any], at_yield: bool) -> None:
            await show([item for item in outputs if not isinstance(item, PatchSignals)])

        spec = call.spec
        renewing: asyncio.Task[None] | None = None
        try:
            if spec.exclusive:
                await show([running_signal(options.namespace, spec.name, True)])
                if self.renew_every > 0:
                    renewing = asyncio.create_task(self._renew(call))
            await Stretches(call, self.units, emit, started, check).run()
        except asyncio.CancelledError:
            if not started.done():
                started.cancel()
            if asyncio.current_task() not in self._cancelling:
                raise  # the app is stopping
            await show([toast(f"{spec.label} was cancelled", "warning")])
        except Exception as exc:
            if not started.done():  # refused before its first wait: the caller is answered
                started.set_exception(exc)
                return
            log.exception("background event %s.%s failed", call.entity_cls.__name__, spec.name)
            message = str(exc) if isinstance(exc, StarModelError | ValueError) else "it failed"
            await show([toast(f"{spec.label}: {message}", "error")])
        finally:
            if renewing is not None:
                renewing.cancel()
            if spec.exclusive:
                await self.claims.release(call.slot)
                await show([running_signal(options.namespace, spec.name, False)])

    async def _renew(self, call: EventCall) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await self.claims.renew(call.slot)
            except StarModelError as exc:  # the next renewal tries again
                log.warning("could not renew the claim of %s: %s", call.spec.name, exc)

    async def cancel(self, call: EventCall) -> None:
        """Ask the run of ``call``'s event on its entity to stop, wherever it runs."""
        await self.bus().publish(CancelRequested(*call.slot))

    async def on_cancel_requested(self, request: CancelRequested) -> None:
        """Bus subscriber (in every process): cancel the matching runs held here."""
        for task in list(self._by_slot.get((request.namespace, request.key, request.event), ())):
            self._cancelling.add(task)
            task.cancel()

    def running(self, slot: Slot) -> int:
        return len(self._by_slot.get(slot, ()))

    def running_tasks(self) -> list[asyncio.Task[None]]:
        return [task for task in self.tasks if not task.done()]

    async def held(self, slot: Slot) -> bool:
        return await self.claims.held(slot)



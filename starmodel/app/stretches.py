"""A background or streaming event's body, run stretch by stretch.

The body is driven here rather than by an asyncio task of its own: each time it resumes, its
entity is taken (its turn; a fresh unit of work; ``self`` loaded with the current state), and
each time it waits (an ``await`` that suspends, or a ``yield``) what it changed is validated,
committed and published, and the entity is released before the wait. So a stretch never
overwrites what other events committed while the body waited, and nothing is held while it
sleeps or does I/O. Inside ``async with self.hold():`` waits do not release the entity.

A stretch that raises is rolled back alone (earlier stretches stay committed). A cancel
reaches the body at its current wait, with the entity held again, as ``CancelledError``.

Turns are taken in this process (SQL records also in the database, ``FOR UPDATE``). A store that
checks versions (Redis) may find that another process saved the entity between a stretch's
load and its commit: the stretch's changes are then applied to the new state if that writer
changed other fields only, else the stretch fails with ``ConcurrencyError``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from pydantic import ValidationError

from starmodel.app.event_call import (
    EventCall,
    OutputCheck,
    Units,
    authorize,
    call_method,
    checked,
    enter,
    flatten,
    target_of,
)
from starmodel.app.uow import UnitOfWork
from starmodel.core.actions import PatchSignals
from starmodel.core.clock import current_clock
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, ValidationFailed
from starmodel.core.holding import current_stepper
from starmodel.core.records import current_workspace

__all__ = ["Emit", "Stretches"]

log = logging.getLogger("starmodel.dispatcher")
_MERGES = 8  # attempts at applying a stretch to a state other processes keep changing
_UNSET = object()

Emit = Callable[[list[Any], bool], Awaitable[None]]
"""``emit(outputs, at_yield)``: a committed stretch's outputs (its ``PatchSignals`` first, then
what the body returned or yielded); ``at_yield`` says whether the stretch ended at a ``yield``."""


class Stretches:
    """Runs one call's body stretch by stretch (see the module docstring).

    Args:
        call: the event call.
        units: the stores' units of work and the entities' turns.
        emit: receives each committed stretch's outputs, with nothing held.
        started: resolved when the first stretch is committed, or set to the error that ended
            the run before (the caller answers the request with it).
        check: refuses, before the commit, outputs the adapter could not send (the stretch
            is then rolled back).
    """

    def __init__(
        self,
        call: EventCall,
        units: Units,
        emit: Emit,
        started: asyncio.Future[None],
        check: OutputCheck | None = None,
    ) -> None:
        self.call = call
        self.check = check
        self.units = units
        self.emit = emit
        self.started = started
        self.holding = 0  # open ``hold()`` blocks (core.holding.Stepper)
        self.target: Entity | type[Entity] | None = None
        self._stack: AsyncExitStack | None = None
        self._uow: UnitOfWork | None = None
        self._base: dict[str, Any] = {}  # the entity's fields as the current stretch loaded them

    async def run(self) -> None:
        """Run the body to its end; raise what ended it (``CancelledError`` included)."""
        current_stepper.set(self)  # this task's context only
        current_clock.set(self.units.clock)
        await self._take()
        try:
            target = self.target
            assert target is not None
            authorize(self.call.spec, self.call.ctx, target)
            kind = self.call.spec.kind
            if kind == "sync":
                returned = flatten(await call_method(self.call, target, self._unit()))
                await self._commit(returned, release=True, at_yield=False)
                return
            body = self.call.spec.fn(target, **self.call.params)
        except BaseException:
            await self._drop()
            raise
        await self._drive(body, generator=kind == "asyncgen")

    async def _drive(self, body: Any, *, generator: bool) -> None:
        step: Any = None  # what is being driven: the coroutine, or the generator's current asend
        throw: BaseException | None = None
        finished = False
        try:
            while True:
                if step is None:
                    step = body.asend(None) if generator else body
                try:
                    yielded = step.send(None) if throw is None else step.throw(throw)
                except StopIteration as stop:
                    step, throw = None, None
                    if not generator:
                        finished = True
                        await self._commit(flatten(stop.value), release=True, at_yield=False)
                        return
                    await self._commit(flatten(stop.value), release=not self.holding, at_yield=True)
                    if self._stack is None:
                        throw = await self._retake()
                    continue
                except StopAsyncIteration:
                    finished = True
                    await self._commit([], release=True, at_yield=False)
                    return
                except ValidationError as exc:
                    finished = True
                    raise ValidationFailed.from_pydantic(exc, "Invalid value") from None
                except BaseException:
                    finished = True
                    raise
                throw = None
                if not self.holding:
                    await self._commit([], release=True, at_yield=False)
                self._answer()  # the first wait ends what the request waits for
                throw = await _wait(yielded)
                if self._stack is None:
                    throw = await self._retake() or throw
        finally:
            await self._drop()  # an unfinished stretch is rolled back
            if not finished:
                await _close(body, step, generator)

    # --- holding and releasing the entity ----------------------------------------------

    async def _take(self) -> None:
        """Take the entity's turn, open a fresh unit of work and load the current state."""
        call = self.call
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.units.turn(call.entity_cls, call.key))
            uow = await stack.enter_async_context(self.units.uow_factory(call.entity_cls))
            if self.target is None:
                self.target = await target_of(uow, call)
            else:
                enter(uow, call)
                if isinstance(self.target, Entity):
                    await uow.refresh(self.target)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._uow = stack, uow
        if isinstance(self.target, Entity):
            self._base = copy.deepcopy(self.target.__dict__)
        current_workspace.set(uow)

    async def _retake(self) -> BaseException | None:
        """Take the entity again before the body resumes; a cancel that comes meanwhile is
        returned (the body gets it once it holds the entity)."""
        cancelled: BaseException | None = None
        while True:
            try:
                await self._take()
            except asyncio.CancelledError as exc:
                cancelled = exc
                continue
            return cancelled

    async def _commit(self, returned: list[Any], *, release: bool, at_yield: bool) -> None:
        """Commit the stretch; release the entity (``release``); then hand on the outputs."""
        uow = self._unit()
        returned = checked(returned, self.check)
        try:
            patch = await uow.commit(self.call.ctx)
        except ConcurrencyError as exc:
            if not release:
                raise
            patch = await self._merge(uow, exc)
        if release:
            await self._drop()
        self._answer()
        outputs = [PatchSignals(patch)] if patch else []
        outputs.extend(returned)
        if outputs or at_yield:
            await self.emit(outputs, at_yield)

    async def _merge(self, failed: UnitOfWork, conflict: ConcurrencyError) -> dict[str, Any]:
        """Another process saved the entity between this stretch's load and its commit (a
        store that checks versions, such as Redis): the stretch's changes are applied to the
        current state if that writer changed other fields only; else ``conflict`` stands."""
        target, base = self.target, self._base
        if not isinstance(target, Entity) or not failed.tracks_only(target):
            raise conflict
        mine = {name: value for name, value in target.__dict__.items() if base.get(name, _UNSET) != value}
        for _ in range(_MERGES):
            await self._drop()
            await self._take()  # the current state, in a fresh unit of work
            current = self._base
            if any(current.get(name, _UNSET) != base.get(name, _UNSET) for name in mine):
                raise conflict  # both changed the same field: neither may silently win
            target.__dict__.update(copy.deepcopy(mine))
            try:
                return await self._unit().commit(self.call.ctx)
            except ConcurrencyError:
                base = current
        raise conflict

    def _answer(self) -> None:
        if not self.started.done():
            self.started.set_result(None)

    async def _drop(self) -> None:
        """Release the entity, rolling back what the stretch did not commit."""
        stack, self._stack, self._uow = self._stack, None, None
        current_workspace.set(None)
        if stack is not None:
            await stack.aclose()

    def _unit(self) -> UnitOfWork:
        assert self._uow is not None, "the entity is not held"
        return self._uow


async def _wait(yielded: Any) -> BaseException | None:
    """Wait, with nothing held, for what the body suspended on; returns what to throw into
    the body when it resumes (``None``: resume it normally)."""
    try:
        if yielded is None:  # a bare yield to the loop (``asyncio.sleep(0)``)
            await asyncio.sleep(0)
            return None
        if not asyncio.isfuture(yielded):
            return RuntimeError(f"an event awaited {yielded!r}, which asyncio cannot wait for")
        yielded._asyncio_future_blocking = False
        await asyncio.wait((yielded,))
        return None
    except asyncio.CancelledError as exc:
        if yielded is not None and asyncio.isfuture(yielded) and yielded.cancel():
            return None  # the body's own await raises CancelledError when it resumes
        return exc


async def _close(body: Any, step: Any, generator: bool) -> None:
    """Close a body that did not finish (cancelled while not waiting, or its commit failed)."""
    try:
        if step is not None and step is not body:
            step.close()
        if generator:
            await body.aclose()
        else:
            body.close()
    except Exception:  # the body's own cleanup failed; what ended it is reported already
        log.debug("closing an unfinished event body failed", exc_info=True)

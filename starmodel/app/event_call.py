"""One event call as a value, and what every kind of run does with it (load, authorize, call)."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from starmodel.app.observe import phase
from starmodel.app.uow import UnitOfWork
from starmodel.core.clock import REAL_CLOCK, Clock, current_clock
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import PermissionDenied, ValidationFailed
from starmodel.core.events import EventSpec
from starmodel.core.journal import Doing
from starmodel.core.ports import Handed
from starmodel.core.records import current_workspace

__all__ = [
    "EventCall",
    "EventResult",
    "OutputCheck",
    "Units",
    "authorize",
    "back_off",
    "call_method",
    "checked",
    "enter",
    "flatten",
    "target_of",
]

OutputCheck = Callable[[list[Any]], None]
"""Raises (``TypeError``, ``ValueError``) for outputs the calling adapter could not send; runs
before the commit, so an event returning one changes nothing. Outputs stay data: the adapter
renders them once, after the commit."""


@dataclass(frozen=True)
class EventCall:
    """Everything one run of an event needs: which entity, which event, for whom, with what.

    Attributes:
        entity_cls: the entity class the event belongs to.
        spec: the event.
        key: the entity instance's key (``""`` for an event of the class).
        params: the validated parameter values.
        ctx: the caller.
        signals: the Datastar signals the request carried (browser-stored entities).
    """

    entity_cls: type[Entity]
    spec: EventSpec
    key: str
    params: dict[str, Any]
    ctx: CallContext
    signals: Mapping[str, Any] | None = None

    @property
    def slot(self) -> tuple[str, str, str]:
        """``(namespace, key, event)``: what identifies a background run of this event."""
        return self.entity_cls.namespace(), self.key, self.spec.name



class Units:
    """How runs reach the stores and time: a fresh unit of work, an entity's turn, the clock
    event bodies sleep on (``starmodel.sleep``)."""

    def __init__(
        self,
        uow_factory: Callable[[type[Entity]], UnitOfWork],
        turn: Callable[[type[Entity], str], AbstractAsyncContextManager[Any]],
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.uow_factory = uow_factory
        self.turn = turn
        self.clock = clock


@dataclass
class EventResult:
    """What an event produced: a list of outputs, or a stream of lists (one per ``yield``).

    Outputs are ``PatchSignals`` (changed state), components (anything with ``__html__`` or
    ``__ft__``) and actions (``redirect``, ``toast``...), in the order they should reach the page.
    """

    spec: EventSpec
    outputs: list[Any] = field(default_factory=list)
    stream: AsyncIterator[list[Any]] | None = None


def checked(outputs: list[Any], check: OutputCheck | None) -> list[Any]:
    """``outputs``, once ``check`` accepted them."""
    if check is not None and outputs:
        check(outputs)
    return outputs


def enter(uow: UnitOfWork, call: EventCall) -> None:
    """Tell ``uow`` whom it works for (private records) and what it runs (the journal)."""
    uow.owner = call.ctx.session_id
    uow.doing = Doing(call.spec.name, call.params, call.entity_cls.namespace())


async def target_of(uow: UnitOfWork, call: EventCall, handed: Handed | None = None) -> Entity | type[Entity]:
    """What the event method receives first: the entity instance (its store may take
    ``handed``, the entity as the previous event committed it), or the class itself."""
    enter(uow, call)
    if call.spec.on_class:
        return call.entity_cls
    return await uow.load(call.entity_cls, call.key, handed)


async def call_method(
    call: EventCall, target: Entity | type[Entity], uow: UnitOfWork, clock: Clock | None = None
) -> Any:
    """Run a plain (sync or async) event method inside ``uow`` (its sleeps on ``clock``)."""
    token = current_workspace.set(uow)
    clock_token = current_clock.set(clock) if clock is not None else None
    try:
        with phase("body"):
            result = call.spec.fn(target, **call.params)
            if inspect.isawaitable(result):
                result = await result
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "Invalid value") from None
    finally:
        current_workspace.reset(token)
        if clock_token is not None:
            current_clock.reset(clock_token)
    return result


async def back_off(attempt: int) -> None:
    """A short random pause before re-running a conflicting event, growing with each
    attempt, so that writers in different processes stop colliding in lock step."""
    if attempt:
        await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))


def authorize(spec: EventSpec, ctx: CallContext, target: Entity | type[Entity]) -> None:
    """The event's own ``allow`` decides; without one, the entity's policy for events."""
    ctx.entity = target if isinstance(target, Entity) else None
    if spec.allow is not None:
        allowed = spec.allow(ctx)
    else:
        entity_cls = target if isinstance(target, type) else type(target)
        allowed = entity_cls.permits("events", ctx)
    if not allowed:
        raise PermissionDenied(f"You may not run {spec.name}")


def flatten(returned: Any) -> list[Any]:
    """An event's return value as a list of outputs (``None`` -> nothing)."""
    if returned is None:
        return []
    if isinstance(returned, list | tuple):
        items: list[Any] = []
        for item in returned:
            items.extend(flatten(item))
        return items
    return [returned]

"""Watching events: the one port through which logs, metrics and traces learn of each event.

The dispatcher's entry point is wrapped by ``observed``: with no observer registered it costs
one attribute test; otherwise every observer hears ``started`` and ``finished`` with an
``ObservedEvent`` (entity, event, store, the caller's context, status, duration). Observers that
time the parts of an event (tracing) also get ``phase`` calls, which the application layer
makes where an event loads, runs its body, commits and publishes; without such an observer
``phase`` is a shared do-nothing context manager.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError
from starmodel.core.events import EventSpec
from starmodel.core.store import StateStore

if TYPE_CHECKING:
    from starmodel.app.dispatcher import Dispatcher

__all__ = ["BusTracer", "EventObserver", "ObservedEvent", "event_status", "observed", "phase"]

log = logging.getLogger("starmodel.observe")
P = ParamSpec("P")
R = TypeVar("R")

_NOTHING: AbstractContextManager[None] = nullcontext()
_STATUS = {
    403: "denied", 404: "not_found", 409: "conflict", 422: "invalid", 429: "limited", 503: "unavailable",
}


@dataclass(slots=True)
class ObservedEvent:
    """One run of an event, as observers see it.

    Attributes:
        entity: the entity class's name.
        event: the event's name.
        store: where the entity lives (a ``StateStore`` value, or a plugin's backend name).
        ctx: the caller (session, tab, user).
        status: ``ok``, or what went wrong: ``invalid``, ``denied``, ``not_found``,
            ``conflict``, ``limited``, ``unavailable``, ``cancelled``, ``error``.
        duration: seconds from the start to the answer (filled in when it finishes).
        error: the exception the event raised, if any.
        notes: per-observer state (an observer keeps what it started here).
    """

    entity: str
    event: str
    store: str
    ctx: CallContext
    status: str = "ok"
    duration: float = 0.0
    error: BaseException | None = None
    notes: dict[int, Any] = field(default_factory=dict)


class EventObserver:
    """Hears every event the dispatcher runs; each hook is optional.

    ``started`` and ``finished`` run in the task that runs the event, around it (for a
    streaming event, up to its first step; for a background event, up to its start).
    ``phase`` returns a context manager around one part of the event (``load``, ``body``,
    ``commit``, ``publish``), or ``None`` when the observer does not time parts.
    """

    times_phases: bool = False
    """Set by observers whose ``phase`` does something; the others are not asked."""

    def started(self, call: ObservedEvent) -> None:
        """The event begins (nothing of it has run)."""

    def finished(self, call: ObservedEvent) -> None:
        """The event has answered (``call.status``, ``call.duration`` and ``call.error`` set)."""

    def phase(self, call: ObservedEvent, name: str) -> AbstractContextManager[Any] | None:
        """A context manager around the part ``name`` of the event (or ``None``)."""
        return None


class BusTracer(Protocol):
    """What a bus that spans processes does for traces: it sends ``inject()`` with each
    fact, and delivers the fact in another process inside ``delivering(carried, fact)``."""

    def inject(self) -> dict[str, str] | None:
        """The current trace context, to travel with a fact (``None``: nothing to send)."""

    def delivering(self, carried: Any, fact: Any) -> AbstractContextManager[Any]:
        """A context manager around delivering ``fact``, given what came with it."""


@dataclass
class _Watch:
    call: ObservedEvent
    timing: list[EventObserver]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with ExitStack() as stack:
            for observer in self.timing:
                part = observer.phase(self.call, name)
                if part is not None:
                    stack.enter_context(part)
            yield


_watching: ContextVar[_Watch | None] = ContextVar("sm_watching", default=None)


def phase(name: str) -> AbstractContextManager[Any]:
    """A context manager around one part of the running event, for observers that time parts
    (a do-nothing one when none does, or outside an event)."""
    watch = _watching.get()
    if watch is None:
        return _NOTHING
    return watch.phase(name)


def event_status(error: BaseException | None) -> str:
    """The status word of an event that raised ``error`` (``ok`` for none)."""
    if error is None:
        return "ok"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, StarModelError):
        return _STATUS.get(error.status_code, "error")
    if isinstance(error, ValueError):
        return "invalid"  # the web adapter answers these with a 422
    return "error"


Dispatch = Callable[Concatenate["Dispatcher", type[Entity], EventSpec, CallContext, P], Awaitable[R]]


def observed(dispatch: Dispatch[P, R]) -> Dispatch[P, R]:
    """Wrap the dispatcher's entry point so that its ``observers`` hear every event."""
    names: dict[tuple[type[Entity], str], tuple[str, str, str]] = {}

    @functools.wraps(dispatch)
    async def watched(
        self: Dispatcher, entity_cls: type[Entity], spec: EventSpec, ctx: CallContext,
        *args: P.args, **kwargs: P.kwargs,
    ) -> R:
        observers = self.observers
        if not observers:
            return await dispatch(self, entity_cls, spec, ctx, *args, **kwargs)
        labels = names.get((entity_cls, spec.name))
        if labels is None:
            options = entity_cls.options()
            custom = options.store is StateStore.CUSTOM
            store = (options.backend or "custom") if custom else options.store.value
            labels = names[(entity_cls, spec.name)] = (entity_cls.__name__, spec.name, store)
        call = ObservedEvent(*labels, ctx)
        timing = [o for o in observers if o.times_phases]
        token = _watching.set(_Watch(call, timing)) if timing else None
        for observer in observers:
            try:
                observer.started(call)
            except Exception:
                log.exception("event observer %r failed", observer)
        began = time.perf_counter()
        try:
            return await dispatch(self, entity_cls, spec, ctx, *args, **kwargs)
        except BaseException as exc:
            call.error = exc
            call.status = event_status(exc)
            raise
        finally:
            call.duration = time.perf_counter() - began
            if token is not None:
                _watching.reset(token)
            for observer in reversed(observers):
                try:
                    observer.finished(call)
                except Exception:  # a failing observer never fails the event
                    log.exception("event observer %r failed", observer)

    return watched

"""The in-process event bus: facts go to every subscriber of their type, failures isolated."""

from __future__ import annotations

import logging
from collections import defaultdict
from contextvars import ContextVar
from typing import Any

from starmodel.core.ports import EventBus, Handler

__all__ = ["InProcessBus", "delivery_position"]

log = logging.getLogger("starmodel.bus")

#: While a bus that spans processes delivers a fact: ``(epoch, seq)``, the fact's place in
#: the order every process sees (live streams use it as the SSE event id, the same in every
#: process). ``None`` for facts delivered within one process only.
delivery_position: ContextVar[tuple[str, int] | None] = ContextVar("sm_delivery_position", default=None)


class InProcessBus(EventBus):
    """Delivers within one process, in subscription order.

    A subscriber that raises is logged and skipped; the publisher and the other subscribers
    never see its error (a fact has already happened; it cannot be refused).
    """

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._resolved: dict[type, list[Handler]] = {}

    def subscribe(self, event_type: type, handler: Handler, *, everywhere: bool = False) -> None:
        """Run ``handler`` for every published fact of ``event_type`` (or a subclass); one
        process is all there is, so ``everywhere`` changes nothing here."""
        self._handlers[event_type].append(handler)
        self._resolved.clear()

    def handlers_for(self, event: Any) -> list[Handler]:
        """Subscribers of the event's type and of its base classes (resolved once per type)."""
        kind = type(event)
        found = self._resolved.get(kind)
        if found is None:
            found = [h for klass in kind.__mro__ for h in self._handlers.get(klass, ())]
            self._resolved[kind] = found
        return found

    async def publish(self, event: Any) -> None:
        for handler in self.handlers_for(event):
            try:
                await handler(event)
            except Exception:
                log.exception("bus subscriber %r failed on %s", handler, type(event).__name__)

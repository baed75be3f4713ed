"""The in-process event bus: facts go to every subscriber of their type, failures isolated."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from starmodel.core.ports import EventBus, Handler

__all__ = ["InProcessBus"]

log = logging.getLogger("starmodel.bus")


class InProcessBus(EventBus):
    """Delivers within one process, in subscription order.

    A subscriber that raises is logged and skipped; the publisher and the other subscribers
    never see its error (a fact has already happened; it cannot be refused).
    """

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._resolved: dict[type, list[Handler]] = {}

    def subscribe(self, event_type: type, handler: Handler) -> None:
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

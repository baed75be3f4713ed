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

    def subscribe(self, event_type: type, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def handlers_for(self, event: Any) -> list[Handler]:
        found: list[Handler] = []
        for klass in type(event).__mro__:
            found.extend(self._handlers.get(klass, ()))
        return found

    async def publish(self, event: Any) -> None:
        for handler in self.handlers_for(event):
            try:
                await handler(event)
            except Exception:
                log.exception("bus subscriber %r failed on %s", handler, type(event).__name__)

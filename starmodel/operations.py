"""What operators use beyond the settings: their own event observers, the JSON log formatter,
the id of the request being handled. See the operations guide (``docs/operations.md``)."""

from __future__ import annotations

from typing import Any

from starmodel.adapters.driving.operations.logs import JsonFormatter
from starmodel.adapters.driving.operations.request_watch import current_request_id
from starmodel.app.observe import EventObserver, ObservedEvent

__all__ = ["EventObserver", "JsonFormatter", "ObservedEvent", "current_request_id", "watch_events"]


def watch_events(sm: Any, observer: EventObserver) -> None:
    """Let ``observer`` hear every event ``sm`` (a ``StarModel``) runs, after the observers
    its settings turned on (logs, metrics, traces)."""
    sm.dispatcher.observers.append(observer)

"""Application services: dispatcher, unit of work, event bus and settings (imports core only)."""

from starmodel.app.bus import InProcessBus
from starmodel.app.dispatcher import Dispatcher, EventResult
from starmodel.app.settings import Settings
from starmodel.app.uow import UnitOfWork

__all__ = ["Dispatcher", "EventResult", "InProcessBus", "Settings", "UnitOfWork"]

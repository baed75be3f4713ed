"""StarModel: entity-centric, hexagonal Python web framework.

Declare entities with typed fields and ``@event`` methods; StarModel serves them as routes,
validates input, persists state and pushes changes live to every tab over Datastar SSE.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from starmodel.adapters.driving.web.security import NoncedElement, csp_nonce
from starmodel.app.settings import Settings
from starmodel.core.actions import alert, patch_signals, redirect, script, toast
from starmodel.core.clock import sleep
from starmodel.core.context import CallContext
from starmodel.core.entity import ServerOnly, computed
from starmodel.core.errors import (
    AlreadyRunning,
    ClientStateInvalid,
    CommitIncomplete,
    ConcurrencyError,
    ConfigurationError,
    CorruptData,
    EntityNotFound,
    EventNotFound,
    PermissionDenied,
    RateLimited,
    StarModelError,
    StoreUnavailable,
    ValidationFailed,
)
from starmodel.core.events import event
from starmodel.core.fields import FieldUI
from starmodel.core.files import FileRules, FileStore, StoredFile
from starmodel.core.journal import JournalEntry, UndoRefused
from starmodel.core.messages import DomainEvent, EntityChanged
from starmodel.core.presence import Viewer, default_viewer, presence_of
from starmodel.core.store import StateStore

if TYPE_CHECKING:
    from starmodel.adapters.driven.stores.sql_entity import Entity
    from starmodel.adapters.driving.web.uploads import file_url, upload_signal
    from starmodel.bootstrap import StarModel

__version__ = "0.1.0"

# Imported when first used, so that `import starmodel` loads no store's library (SQLModel,
# SQLAlchemy, Redis, Alembic): `Entity` needs SQLModel's metaclass, `StarModel` the stores.
_LAZY = {
    "Entity": "starmodel.adapters.driven.stores.sql_entity",
    "StarModel": "starmodel.bootstrap",
    "file_url": "starmodel.adapters.driving.web.uploads",
    "upload_signal": "starmodel.adapters.driving.web.uploads",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'starmodel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "AlreadyRunning",
    "CallContext",
    "ClientStateInvalid",
    "CommitIncomplete",
    "ConcurrencyError",
    "ConfigurationError",
    "CorruptData",
    "DomainEvent",
    "Entity",
    "EntityChanged",
    "EntityNotFound",
    "EventNotFound",
    "FieldUI",
    "FileRules",
    "FileStore",
    "JournalEntry",
    "NoncedElement",
    "PermissionDenied",
    "RateLimited",
    "ServerOnly",
    "Settings",
    "StarModel",
    "StarModelError",
    "StateStore",
    "StoreUnavailable",
    "StoredFile",
    "UndoRefused",
    "ValidationFailed",
    "Viewer",
    "alert",
    "computed",
    "csp_nonce",
    "default_viewer",
    "event",
    "file_url",
    "patch_signals",
    "presence_of",
    "redirect",
    "script",
    "sleep",
    "toast",
    "upload_signal",
]

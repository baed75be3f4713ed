"""The domain: entities, events, signals, stores, actions, ports and errors.

Imports nothing from the app, adapters or CLI layers, nor any infrastructure library.
"""

from starmodel.core.actions import alert, patch_signals, redirect, script, toast
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity, ServerOnly, computed, registered_entities
from starmodel.core.errors import (
    ClientStateInvalid,
    CommitIncomplete,
    ConcurrencyError,
    ConfigurationError,
    CorruptData,
    EntityNotFound,
    EventNotFound,
    PermissionDenied,
    StarModelError,
    StoreUnavailable,
    ValidationFailed,
)
from starmodel.core.events import event
from starmodel.core.messages import DomainEvent, EntityChanged
from starmodel.core.ports import EntityRepository, EventBus
from starmodel.core.store import StateStore

__all__ = [
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
    "EntityRepository",
    "EventBus",
    "EventNotFound",
    "PermissionDenied",
    "ServerOnly",
    "StarModelError",
    "StateStore",
    "StoreUnavailable",
    "ValidationFailed",
    "alert",
    "computed",
    "event",
    "patch_signals",
    "redirect",
    "registered_entities",
    "script",
    "toast",
]

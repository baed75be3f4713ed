"""Where an entity's state is kept when the app may run as more than one process.

A ``SERVER_MEMORY`` entity lives in the memory of the process that serves the request. For
a session entity that is a per-process cache of one browser's state; for a global entity it
would be one copy per process, each process showing its own (three clicks on one process, a
page from another still showing 0). So when ``REDIS_URL`` is set (the sign that several
processes serve the app and share real time) a global memory entity is kept in Redis, shared
by all of them, like a ``SERVER_REDIS`` entity; and ``starmodel run --workers N`` without
``REDIS_URL`` refuses to start while the app has one. An entity that is meant to be per
process (a cache, this process's own figures) says so: ``model_config["per_process"] = True``.
"""

from __future__ import annotations

from collections.abc import Iterable

from starmodel.app.settings import Settings
from starmodel.core.entity import Entity
from starmodel.core.store import StateStore

__all__ = ["kept_in", "per_process_globals"]


def kept_in(entity_cls: type[Entity], settings: Settings) -> StateStore:
    """The store that keeps ``entity_cls`` under ``settings`` (its own, except a global memory
    entity with Redis configured, unless it is ``per_process``: Redis)."""
    options = entity_cls.options()
    if (options.store is StateStore.SERVER_MEMORY and options.scope == "global"
            and settings.redis_url and not options.per_process):
        return StateStore.SERVER_REDIS
    return options.store


def per_process_globals(entities: Iterable[type[Entity]], settings: Settings) -> list[type[Entity]]:
    """The global entities each server process would keep a copy of without meaning to
    (memory, no Redis, not ``per_process``)."""
    return [
        cls for cls in entities
        if cls.options().scope == "global" and not cls.options().per_process
        and kept_in(cls, settings) is StateStore.SERVER_MEMORY
    ]

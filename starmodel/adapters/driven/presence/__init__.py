"""Where the viewers of each instance are kept: this process's memory, or Redis.

Importing this package imports no Redis module (``redis.py`` is imported when used)."""

from __future__ import annotations

from starmodel.adapters.driven.presence.memory import MemoryPresenceTracker

__all__ = ["MemoryPresenceTracker"]

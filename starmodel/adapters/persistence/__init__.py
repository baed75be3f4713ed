"""Old path of :mod:`starmodel.adapters.driven.stores` (the storage adapters)."""

from starmodel.adapters.driven.stores import MemoryRepository

__all__ = ["MemoryRepository"]

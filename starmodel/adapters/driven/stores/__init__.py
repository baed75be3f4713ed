"""Storage adapters, one module per technology, all implementing ``EntityRepository``."""

from starmodel.adapters.driven.stores.memory import MemoryRepository

__all__ = ["MemoryRepository"]

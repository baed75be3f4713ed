"""Storage adapters, one module per technology, all implementing ``EntityRepository``."""

from starmodel.adapters.persistence.memory import MemoryRepository

__all__ = ["MemoryRepository"]

"""The journal in process memory: the journal of memory and browser-kept entities when the
app has no Redis (lost on restart, like those entities)."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from starmodel.core.journal import Journal, JournalEntry, JournalSettings

__all__ = ["MemoryJournal"]


class MemoryJournal(Journal):
    """Entries per record in version order, numbered in the order they were appended."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.records: dict[tuple[str, str], list[JournalEntry]] = {}
        self._ids = itertools.count(1)
        self._clock = clock

    async def append(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> None:
        for entry in entries:
            kept = self.records.setdefault((entry.entity, entry.key), [])
            stored = entry.with_id(str(next(self._ids)))
            bisect.insort(kept, stored, key=lambda e: (e.version, int(e.id)))
            self._prune(kept, settings.get(entry.entity))

    def _prune(self, kept: list[JournalEntry], settings: JournalSettings | None) -> None:
        if settings is None:
            return
        if settings.keep is not None and len(kept) > settings.keep:
            del kept[: len(kept) - settings.keep]
        if settings.max_age is not None:
            oldest = datetime.fromtimestamp(self._clock(), UTC) - timedelta(seconds=settings.max_age)
            kept[:] = [entry for entry in kept if entry.at >= oldest]

    async def history(
        self, entity: str, key: str | None = None, *, limit: int = 50, newer_than: int | None = None
    ) -> list[JournalEntry]:
        if key is not None:
            found = list(self.records.get((entity, key), []))
            if newer_than is not None:
                found = [entry for entry in found if entry.version > newer_than]
            return found[::-1][:limit]
        every = [e for (name, _), kept in self.records.items() if name == entity for e in kept]
        every.sort(key=lambda e: (e.at, int(e.id)), reverse=True)
        return every[:limit]

    async def find(self, entity: str, entry_id: str) -> JournalEntry | None:
        for (name, _), kept in self.records.items():
            if name == entity:
                for entry in kept:
                    if entry.id == entry_id:
                        return entry
        return None

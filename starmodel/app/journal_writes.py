"""How the unit of work writes journal entries: to the stores that keep them in their own
transaction first (before the commit), then the others' to the app's journal (after it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starmodel.core.entity import Entity
from starmodel.core.journal import Journal, JournalEntry, JournalSettings
from starmodel.core.ports import EntityRepository

__all__ = ["Entries", "append_after_commit", "record_in_stores"]

Entries = list[tuple[EntityRepository, type[Entity], JournalEntry]]
"""Journal entries of one unit of work, with the store that saved the change and its class."""
log = logging.getLogger("starmodel")


def _settings(group: Entries) -> dict[str, JournalSettings]:
    found: dict[str, JournalSettings] = {}
    for _, cls, entry in group:
        settings = cls.options().journal
        if settings is not None:
            found[entry.entity] = settings
    return found


async def record_in_stores(entries: Entries) -> Entries:
    """Hand each store its entries to write in its transaction; those of stores that keep no
    journal of their own come back, for the app's journal after the commit."""
    later: Entries = []
    groups: list[tuple[EntityRepository, Entries]] = []
    for found in entries:
        for repository, group in groups:
            if repository is found[0]:
                group.append(found)
                break
        else:
            groups.append((found[0], [found]))
    for repository, group in groups:
        if not await repository.record([entry for _, _, entry in group], _settings(group)):
            later.extend(group)
    return later


async def append_after_commit(
    journal_for: Callable[[type[Entity]], Journal], entries: Entries, durable: list[EntityRepository] | None
) -> None:
    """Append the entries of the stores that committed (all, when ``durable`` is ``None``) to
    the app's journal. A failure here is logged: the change itself is saved."""
    by_journal: dict[int, tuple[Journal, Entries]] = {}
    for found in entries:
        repository, cls, _ = found
        if durable is not None and not any(r is repository for r in durable):
            continue
        journal = journal_for(cls)
        by_journal.setdefault(id(journal), (journal, []))[1].append(found)
    for journal, group in by_journal.values():
        kept: list[Any] = [entry for _, _, entry in group]
        try:
            await journal.append(kept, _settings(group))
        except Exception:
            log.exception("the journal could not keep %d entries of %s", len(kept), kept[0].entity)

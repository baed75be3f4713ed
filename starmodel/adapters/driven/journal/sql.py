"""The journal of SQL entities: a table (``starmodel_journal``) in the app's database, written
in the transaction of the change it records, so both commit or neither does.

The table is part of the app's tables whenever one of its SQL entities keeps a journal
(``StarModel.sql_entities``): created at start without migrations, made by
``starmodel makemigrations`` with them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Text, and_, or_, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Field

from starmodel.adapters.driven.stores.sql import SqlDatabase, SqlRepository
from starmodel.adapters.driven.stores.sql_entity import Entity
from starmodel.core.errors import StoreUnavailable
from starmodel.core.journal import Journal, JournalEntry, JournalSettings

__all__ = ["JOURNAL_TABLE", "JournalRow", "SqlJournal", "journal_writes"]

JOURNAL_TABLE = "starmodel_journal"


class JournalRow(Entity, table=True):
    """One journal entry as a row (an entity for its table only: no app serves it)."""

    model_config = {  # type: ignore[typeddict-unknown-key]
        "abstract": True,  # not discovered as one of an app's entities
        "namespace": "sm_journal",
        "table_name": JOURNAL_TABLE,
        "policy": {"*": False},
    }

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer, "sqlite")
    )
    entity: str = Field(max_length=100, index=True)
    record: str = Field(max_length=400, index=True)  # "<entity>/<key>": one record's entries
    key: str = Field(max_length=255)
    version: int
    event: str = Field(max_length=200)
    actor: str = Field(max_length=255)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    kind: str = Field(max_length=10)
    undoes: str | None = Field(default=None, max_length=32)
    changes: str = Field(sa_type=Text)
    params: str = Field(sa_type=Text)


def _row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "entity": entry.entity,
        "record": f"{entry.entity}/{entry.key}",
        "key": entry.key,
        "version": entry.version,
        "event": entry.event[:200],
        "actor": entry.actor[:255],
        "at": entry.at,
        "kind": entry.kind,
        "undoes": entry.undoes,
        "changes": json.dumps(entry.changes, default=str),
        "params": json.dumps(entry.params, default=str),
        "sm_version": 1,
    }


def _entry(row: Any) -> JournalEntry:
    return JournalEntry.from_dict({
        "id": str(row["id"]),
        "entity": row["entity"],
        "key": row["key"],
        "version": row["version"],
        "event": row["event"],
        "actor": row["actor"],
        "at": row["at"].isoformat() if isinstance(row["at"], datetime) else row["at"],
        "kind": row["kind"],
        "undoes": row["undoes"],
        "changes": json.loads(row["changes"]),
        "params": json.loads(row["params"]),
    })


def journal_writes(
    database: SqlDatabase, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]
) -> list[tuple[Any, Any]]:
    """The statements (with their parameters) that append ``entries`` and prune their records
    by ``settings``: one insert, and one delete per record that keeps a bounded history."""
    table = database.table(JournalRow)
    rows = [_row(entry) for entry in entries]
    statements: list[tuple[Any, Any]] = [(table.insert(), rows if len(rows) > 1 else rows[0])]
    last: dict[str, JournalEntry] = {}
    for entry in entries:
        if settings.get(entry.entity) is not None:
            last[f"{entry.entity}/{entry.key}"] = entry
    for record, entry in last.items():
        kept = settings[entry.entity]
        limits = []
        if kept.keep is not None:
            limits.append(table.c.version <= entry.version - kept.keep)
        if kept.max_age is not None:
            limits.append(table.c.at < entry.at - timedelta(seconds=kept.max_age))
        if limits:
            statements.append((table.delete().where(and_(table.c.record == record, or_(*limits))), None))
    return statements


class SqlJournal(Journal):
    """Reads the journal table (entries of SQL entities are written by their repository)."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database

    async def append(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> None:
        """Entries in a transaction of their own (those of SQL entities are written by their
        repository, in the transaction of the change)."""
        repository = SqlRepository(self.database)
        try:
            await repository.record(entries, settings)
            await repository.commit()
        except BaseException:
            await repository.rollback()
            raise

    async def history(
        self, entity: str, key: str | None = None, *, limit: int = 50, newer_than: int | None = None
    ) -> list[JournalEntry]:
        table = self.database.table(JournalRow)
        query = select(table)
        if key is not None:
            query = query.where(table.c.record == f"{entity}/{key}")
            if newer_than is not None:
                query = query.where(table.c.version > newer_than)
            query = query.order_by(table.c.version.desc(), table.c.id.desc())
        else:
            query = query.where(table.c.entity == entity).order_by(table.c.id.desc())
        return [_entry(row) for row in await self._rows(query.limit(limit))]

    async def find(self, entity: str, entry_id: str) -> JournalEntry | None:
        if not entry_id.isdigit() or len(entry_id) > 18:
            return None
        table = self.database.table(JournalRow)
        query = select(table).where(and_(table.c.entity == entity, table.c.id == int(entry_id)))
        rows = await self._rows(query)
        return _entry(rows[0]) if rows else None

    async def _rows(self, query: Any) -> list[Any]:
        try:
            async with await self.database.connect() as conn:
                return list((await conn.execute(query)).mappings().all())
        except (OSError, DBAPIError) as exc:
            raise StoreUnavailable(f"the journal cannot be read ({str(exc).splitlines()[0]})") from None

"""Record finders: list queries (search, sort, a page, a count) answered by each store.

SQL records are queried in the database (``LIKE`` over the searched columns, ``ORDER BY``,
``LIMIT``/``OFFSET`` and ``COUNT``); records of the other stores are scanned through their
repository, which suits the sizes those stores hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.exc import DBAPIError

from starmodel.adapters.driven.stores.sql import OWNER_COLUMN, SqlDatabase, entity_from_row, statement_error
from starmodel.core.entity import Entity
from starmodel.core.errors import StoreUnavailable
from starmodel.core.ports import EntityRepository
from starmodel.core.queries import ListQuery, RecordFinder, ResultPage, matches

__all__ = ["ScanRecordFinder", "SqlRecordFinder"]

E = TypeVar("E", bound=Entity)
SCAN_LIMIT = 100_000
"""The most records a scanning finder reads for one query."""


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlRecordFinder(RecordFinder):
    """Queries a SQL entity's table directly (read-only, outside any unit of work)."""

    def __init__(self, database: SqlDatabase) -> None:
        self.db = database

    async def find(self, entity_cls: type[E], query: ListQuery, *, owner: str | None = None) -> ResultPage[E]:
        table = self.db.table(entity_cls)
        pk = table.c[entity_cls.options().primary_key or ""]
        conditions: list[Any] = []
        if query.search and query.search_fields:
            pattern = _like_pattern(query.search)
            conditions.append(
                or_(
                    *(
                        func.lower(cast(table.c[name], String)).like(pattern, escape="\\")
                        for name in query.search_fields
                    )
                )
            )
        if owner is not None:
            conditions.append(table.c[OWNER_COLUMN] == owner)
        order: list[Any] = []
        if query.sort is not None:
            column = table.c[query.sort]
            order.append(column.desc() if query.descending else column.asc())
        order.append(pk.desc() if query.descending and query.sort is None else pk.asc())
        rows_query = (
            select(table).where(*conditions).order_by(*order).offset(query.offset).limit(query.per_page)
        )
        count_query = select(func.count()).select_from(table).where(*conditions)
        try:
            async with await self.db.connect() as conn:
                total = int((await conn.execute(count_query)).scalar_one())
                rows = (await conn.execute(rows_query)).mappings().all()
        except DBAPIError as exc:
            raise statement_error(exc, entity_cls) from None
        except OSError as exc:
            raise StoreUnavailable(f"the database cannot be reached ({exc})") from None
        return ResultPage([entity_from_row(entity_cls, row) for row in rows], total, query)


class ScanRecordFinder(RecordFinder):
    """Reads every record through the repository, then filters, sorts and slices in Python."""

    def __init__(self, repository: Callable[[], EntityRepository]) -> None:
        self.repository = repository

    async def find(self, entity_cls: type[E], query: ListQuery, *, owner: str | None = None) -> ResultPage[E]:
        repository = self.repository()
        await repository.begin()
        try:
            records = await repository.list(entity_cls, limit=SCAN_LIMIT, owner=owner)
        finally:
            await repository.rollback()
        if query.search and query.search_fields:
            records = [r for r in records if matches(r, query.search, query.search_fields)]
        if query.sort is not None:
            name = query.sort
            present = [r for r in records if getattr(r, name) is not None]
            missing = [r for r in records if getattr(r, name) is None]
            present.sort(key=lambda r: getattr(r, name), reverse=query.descending)
            records = present + missing
        elif query.descending:
            records.reverse()
        start = query.offset
        return ResultPage(records[start : start + query.per_page], len(records), query)


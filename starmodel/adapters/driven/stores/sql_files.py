"""The column of a file field in SQL: the file's facts (``StoredFile``) as JSON. Migrations
write it as ``sa.JSON()``: the column is plain JSON in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON
from sqlalchemy.types import TypeDecorator

from starmodel.core.files import StoredFile

__all__ = ["StoredFileColumn"]


class StoredFileColumn(TypeDecorator[Any]):
    """JSON in the database, ``StoredFile`` facts in and out (the entity validates them)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, StoredFile):
            return value.model_dump()
        return value

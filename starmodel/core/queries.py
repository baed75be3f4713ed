"""The read side of records: what list screens ask for (search, sort, one page) and get back.

Kept apart from the repository port on purpose: repositories load and save entities for
events; screens query. Each store answers queries its own way (SQL in the database, the
others by scanning their records).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starmodel.core.entity import Entity

__all__ = ["ListQuery", "RecordFinder", "ResultPage"]

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True)
class ListQuery:
    """One page of records, optionally filtered by a search text and sorted by a field.

    Attributes:
        search: text looked for (case-insensitively) in ``search_fields``.
        search_fields: the fields searched.
        sort: the field to sort by (``None``: key order).
        descending: sort from the highest value down.
        page: 1-based page number.
        per_page: records per page.
    """

    search: str = ""
    search_fields: tuple[str, ...] = ()
    sort: str | None = None
    descending: bool = False
    page: int = 1
    per_page: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass
class ResultPage(Generic[E]):
    """The records of one page, and how many match in all."""

    items: list[E]
    total: int
    query: ListQuery = field(default_factory=ListQuery)

    @property
    def pages(self) -> int:
        """How many pages the matching records fill (at least 1)."""
        return max(1, -(-self.total // self.query.per_page))


class RecordFinder(ABC):
    """Answers list queries for the records of one store."""

    @abstractmethod
    async def find(self, entity_cls: type[E], query: ListQuery, *, owner: str | None = None) -> ResultPage[E]:
        """The page ``query`` asks for (a private entity's records: ``owner``'s only)."""


def matches(entity: Entity, text: str, fields: Sequence[str]) -> bool:
    """Whether any of ``fields`` contains ``text``, ignoring case (for stores without queries)."""
    needle = text.casefold()
    return any(needle in str(getattr(entity, name, "") or "").casefold() for name in fields)

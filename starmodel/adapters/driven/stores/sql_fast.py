"""The short way through PostgreSQL for a plain event on one record: two statements, each its
own transaction, sent straight to asyncpg.

The general way is ``BEGIN``, ``SELECT ... FOR UPDATE``, ``UPDATE ... WHERE sm_version = ...``,
``COMMIT``: four round trips while the row is locked. A plain event's first attempt needs less:

- its record is read without a lock (``SELECT``, committed at once), or not read at all when
  the event before it on that record, in this process, handed on the row its commit returned;
- its one write waits until the unit of work commits, and is then the whole transaction:
  ``UPDATE ... WHERE id = ... AND sm_version = <read> RETURNING *``. The version check refuses
  the write if anyone changed or deleted the row since it was read (nothing is written: the
  event is re-run, the general way); the returned row is what the next event may start from.

As soon as the event does anything else with the database (reads or lists other records,
inserts, deletes, writes a second record, or writes another store too), the repository opens
a transaction the general way and brings in what it did so far: the unlocked read is read
again ``FOR UPDATE`` and must still have its version, a waiting update runs inside the
transaction. From then on the event is exactly on the general path.

Statements are compiled once per entity by SQLAlchemy (the same SQL, casts and bound values
as the general path) and run by asyncpg, which prepares each once per connection. Only
columns whose values asyncpg reads and writes as they are take this way (numbers, text,
booleans, dates and times); an entity with another column (JSON, enums, decimals, UUIDs, a
custom type) always goes the general way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    Time,
    TypeDecorator,
    bindparam,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from starmodel.core.entity import Entity

__all__ = ["DirectStatement", "FastStatements", "Plan", "fast_statements", "fetch_direct"]

_PLAIN_TYPES = (Integer, String, Boolean, Float, DateTime, Date, Time)


@dataclass(frozen=True)
class DirectStatement:
    """A statement compiled for asyncpg: its SQL (``$1``, ``$2``... with casts) and, in order,
    the names of its bound values and their converters (``None``: passed as they are)."""

    sql: str
    names: tuple[str, ...]
    converters: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(cls, statement: Any, dialect: Dialect) -> DirectStatement:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        converters = tuple(compiled.binds[name].type._cached_bind_processor(dialect) for name in names)
        return cls(compiled.string, names, converters)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [
            values[name] if convert is None else convert(values[name])
            for name, convert in zip(self.names, self.converters, strict=True)
        ]


@dataclass(frozen=True)
class FastStatements:
    """An entity's statements on the short way: the read without a lock, and the update that
    checks the version and returns the row it wrote."""

    read: DirectStatement
    update: DirectStatement


def fast_statements(table: Table, pk: str, update: Any, dialect: Dialect) -> FastStatements | None:
    """The entity's short-way statements, or ``None`` if one of its columns needs converting
    (its values would not come back from asyncpg as the general path gives them)."""
    if not all(_plain(column.type, dialect) for column in table.columns):
        return None
    read = select(table).where(table.c[pk] == bindparam("sm_key"))
    returning = update.returning(*table.columns)
    return FastStatements(DirectStatement.compile(read, dialect), DirectStatement.compile(returning, dialect))


def _plain(column_type: Any, dialect: Dialect) -> bool:
    """Whether asyncpg reads and writes the column's values as they are (a type decorator
    that converts nothing, such as SQLModel's ``AutoString``, is its underlying type)."""
    if isinstance(column_type, TypeDecorator):
        if column_type._has_bind_processor or column_type._has_result_processor:
            return False
        return _plain(column_type.load_dialect_impl(dialect), dialect)
    if isinstance(column_type, Enum | Numeric) and not isinstance(column_type, Float):
        return False
    if isinstance(column_type, Float) and column_type.asdecimal:
        return False
    return isinstance(column_type, _PLAIN_TYPES)


async def fetch_direct(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> Any:
    """Run one statement on the connection's asyncpg connection, outside any transaction (the
    server commits it on its own): its first row, or ``None``. A failure is raised as
    SQLAlchemy raises it on the general path (``IntegrityError``, ``DBAPIError`` with
    ``connection_invalidated``...), so that it means the same to the caller."""
    sync = conn.sync_connection
    assert sync is not None, "the connection is not open"
    fairy = sync.connection
    adapted, driver = fairy.dbapi_connection, fairy.driver_connection
    assert driver is not None, "the connection was closed"
    try:
        return await driver.fetchrow(sql, *args)
    except Exception as exc:
        error = _as_dbapi_error(sync.dialect, adapted, exc, sql, args)
        if error is None:
            raise
        raise error from exc


def _as_dbapi_error(
    dialect: Dialect, adapted: Any, exc: Exception, sql: str, args: Sequence[Any]
) -> DBAPIError | None:
    """The driver's error as SQLAlchemy's (``None`` for what is not a database error, such as
    ``OSError``: raised as it is)."""
    try:
        adapted._handle_exception(exc)  # raises the DB-API error SQLAlchemy's adapter maps it to
    except Exception as translated:
        dbapi_error = translated
    else:  # pragma: no cover - the adapter always raises
        return None
    base = dialect.loaded_dbapi.Error
    if not isinstance(dbapi_error, base):
        return None
    invalidated = dialect.is_disconnect(dbapi_error, adapted, None)
    wrapped = DBAPIError.instance(
        sql, list(args), dbapi_error, base, connection_invalidated=invalidated, dialect=dialect
    )
    return wrapped if isinstance(wrapped, DBAPIError) else None


@dataclass
class Plan:
    """How far a unit of work went on the short way (see the module docstring).

    Attributes:
        allowed: the unit of work may take it (a plain event's first attempt).
        entity_cls: the record read without a lock (``None``: nothing done yet).
        key: its key, in its column's type.
        version: the version read (``None``: no such record).
        update: the bound values of its update, waiting for the commit.
    """

    allowed: bool = False
    entity_cls: type[Entity] | None = None
    key: Any = None
    version: int | None = None
    update: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.entity_cls is not None

    def may_start(self) -> bool:
        return self.allowed and self.entity_cls is None

    def start(self, entity_cls: type[Entity], key: Any, version: int | None) -> None:
        self.entity_cls, self.key, self.version = entity_cls, key, version

    def may_defer(self, entity_cls: type[Entity], key: Any, version: int) -> bool:
        """Whether this write is the read record's one update, which can wait for the commit."""
        return (
            self.update is None
            and self.entity_cls is entity_cls
            and self.key == key
            and self.version is not None
            and self.version == version
        )

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

Writes to one record go through its ``RowQueue``: one statement in flight at a time. The event
whose write is queued lets the next event on the record run at once, from the row as its
write will store it (``Handed`` with ``settled``); the writes queued while a statement is in
flight are then sent as one (the last one's values, the first one's version check: a group
commit). A write built on a row that was never stored (its write was refused) is refused too,
and an event built on one is re-run rather than answered.

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

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

from starmodel.adapters.driven.stores.sql_tables import entity_from_row
from starmodel.core.entity import Entity
from starmodel.core.errors import ConcurrencyError, StoreUnavailable

__all__ = [
    "DirectStatement",
    "FastStatements",
    "Plan",
    "QueuedWrite",
    "RowQueue",
    "ShortWay",
    "entity_from_update",
    "fast_statements",
    "fetch_direct",
]

E = TypeVar("E", bound=Entity)
_PLAIN_TYPES = (Integer, String, Boolean, Float, DateTime, Date, Time)
_EXACT_TYPES = (Integer, String, Boolean, Float)  # no time zone or precision lost on the way


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
    exact: bool  # every column's value comes back from the database as it was sent


def fast_statements(table: Table, pk: str, update: Any, dialect: Dialect) -> FastStatements | None:
    """The entity's short-way statements, or ``None`` if one of its columns needs converting
    (its values would not come back from asyncpg as the general path gives them)."""
    if not all(_plain(column.type, dialect) for column in table.columns):
        return None
    read = select(table).where(table.c[pk] == bindparam("sm_key"))
    returning = update.returning(*table.columns)
    exact = all(isinstance(_base_type(column.type, dialect), _EXACT_TYPES) for column in table.columns)
    return FastStatements(
        DirectStatement.compile(read, dialect), DirectStatement.compile(returning, dialect), exact
    )


class ShortWay:
    """What a database keeps for the short way: each entity's statements (compiled once) and
    the queue of each record that has writes on their way."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._statements: dict[type[Entity], FastStatements | None] = {}
        self._queues: dict[tuple[type[Entity], Any], RowQueue] = {}

    def statements(
        self, entity_cls: type[Entity], table: Table, pk: str, update: Any
    ) -> FastStatements | None:
        if entity_cls not in self._statements:
            self._statements[entity_cls] = fast_statements(table, pk, update, self.dialect)
        return self._statements[entity_cls]

    def queue(self, entity_cls: type[Entity], key: Any) -> RowQueue:
        """The record's queue (kept while it has writes)."""
        slot = (entity_cls, key)
        found = self._queues.get(slot)
        if found is None:

            def forget(queue: RowQueue) -> None:
                if self._queues.get(slot) is queue:
                    del self._queues[slot]

            found = self._queues[slot] = RowQueue(forget)
        return found


def entity_from_update(entity_cls: type[E], columns: Sequence[str], values: Mapping[str, Any]) -> E:
    """The record as an update with these bound values (``new_<column>``, ``sm_key``)
    stores it."""
    row = {name: values[f"new_{name}"] for name in columns}
    row[entity_cls.options().primary_key or ""] = values["sm_key"]
    return entity_from_row(entity_cls, row)


def _base_type(column_type: Any, dialect: Dialect) -> Any:
    while isinstance(column_type, TypeDecorator):
        column_type = column_type.load_dialect_impl(dialect)
    return column_type


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
        base: the queued write whose row the record was handed on from (``None``: read).
    """

    allowed: bool = False
    entity_cls: type[Entity] | None = None
    key: Any = None
    version: int | None = None
    update: dict[str, Any] | None = None
    base: QueuedWrite | None = None  # the queued write the record was handed on from

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


@dataclass(eq=False)
class QueuedWrite:
    """One event's update in a record's queue.

    Attributes:
        values: its bound values (``sm_read``: the version it read).
        base: the write whose row it was built on, if that row was handed on before it was
            stored (``None``: built on a row read from the database).
        outcome: ``True`` once stored, ``False`` once refused or never sent (then so is every
            write built on it); unresolved meanwhile.
        error: why its statement failed, if it did (its outcome is then unknown: not re-run).
    """

    values: dict[str, Any]
    base: QueuedWrite | None
    outcome: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    row: Any = None
    error: BaseException | None = None
    lead: asyncio.Future[list[QueuedWrite]] | None = None

    async def settled(self) -> bool:
        return await asyncio.shield(self.outcome)

    def refused(self) -> bool:
        return self.outcome.done() and not self.outcome.result()

    def settle(self, stored: bool) -> None:
        if not self.outcome.done():
            self.outcome.set_result(stored)


Send = Callable[[dict[str, Any]], Awaitable[Any]]


class RowQueue:
    """The short-way writes of one record in this process: one statement in flight at a time;
    the writes queued meanwhile go out together next, sent by the first of them."""

    def __init__(self, forget: Callable[[RowQueue], None]) -> None:
        self._forget = forget
        self._busy = False
        self._waiting: list[QueuedWrite] = []

    async def write(self, write: QueuedWrite, send: Send, queued: Callable[[], None]) -> Any:
        """Store ``write`` (with the writes queued beside it): the row stored, or
        ``ConcurrencyError`` if the record changed meanwhile or ``write`` was built on a row
        that was never stored. ``queued()`` is called once the write has its place."""
        if write.base is not None and write.base.refused():
            write.settle(False)
            raise ConcurrencyError("the record this event started from was never stored")
        if not self._busy:
            self._busy = True
            queued()
            await self._send([write], send)
        else:
            write.lead = asyncio.get_running_loop().create_future()
            self._waiting.append(write)
            queued()
            try:
                batch = await write.lead  # the writes to send together, this one first; or []
            except asyncio.CancelledError:
                self._abandon(write)
                raise
            if batch:
                await self._send(batch, send)
            else:
                await write.settled()
        if write.error is not None:
            raise write.error
        if not write.outcome.result():
            raise ConcurrencyError("the record was changed or deleted meanwhile")
        return write.row

    async def _send(self, batch: list[QueuedWrite], send: Send) -> None:
        """Send ``batch`` as one update (the last write's values, the first one's version
        check), settle its writes, then let the next ones go. If no answer comes, the others
        of the batch fail as this one does: their change may be stored, so none is re-run."""
        stored = False
        try:
            row = await send(dict(batch[-1].values, sm_read=batch[0].values["sm_read"]))
            stored = row is not None
            for write in batch:
                write.row = row
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else StoreUnavailable("no answer from the database")
            for write in batch[1:]:
                write.error = copy.copy(error)
            raise
        finally:
            for write in batch:
                write.settle(stored)
            self._next()

    def _abandon(self, write: QueuedWrite) -> None:
        """A waiting write's event was cancelled: it leaves the queue (nothing of it sent), or
        gives up the batch it was to send (none of it sent)."""
        if write in self._waiting:
            self._waiting.remove(write)
            write.settle(False)
        elif write.lead is not None and write.lead.done() and not write.lead.cancelled():
            batch = write.lead.result()
            for member in batch:
                member.settle(False)
            if batch:
                self._next()

    def _next(self) -> None:
        """The writes waiting go out next: those built on a refused row are refused; the rest,
        in order, as long as each was built on the one before, are sent by the first."""
        while self._waiting and self._waiting[0].base is not None and self._waiting[0].base.refused():
            refused = self._waiting.pop(0)
            refused.settle(False)
            _lead(refused, [])
        if not self._waiting:
            self._busy = False
            self._forget(self)
            return
        batch = [self._waiting.pop(0)]
        while self._waiting and self._waiting[0].base is batch[-1]:
            batch.append(self._waiting.pop(0))
        _lead(batch[0], batch)
        for write in batch[1:]:
            _lead(write, [])


def _lead(write: QueuedWrite, batch: list[QueuedWrite]) -> None:
    """Wake a waiting write: to send ``batch``, or (empty) to wait for its outcome."""
    if write.lead is not None and not write.lead.done():
        write.lead.set_result(batch)

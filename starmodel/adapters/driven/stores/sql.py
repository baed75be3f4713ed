"""``SERVER_SQL``: entities stored as rows, through SQLAlchemy's async engine (SQLite via
aiosqlite, PostgreSQL via asyncpg).

The entity stays a pydantic model; its table is derived from its fields (SQLModel's column
mapping, so ``sqlmodel.Field(primary_key=..., unique=..., max_length=...)`` work) plus a
``sm_version`` column for optimistic concurrency: an update only applies to the version it
read, so no write is ever lost. One repository per unit of work = one transaction.

Every round trip to a PostgreSQL server is watched and goes through the database's circuit
breaker (``sql_guard``): a frozen server answers 503 within one store timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import (
    MetaData,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from starmodel.adapters.driven.breaker import CircuitBreaker
from starmodel.adapters.driven.stores.sql_errors import (
    check_whole_numbers,
    first_line,
    integrity_error,
    statement_error,
)
from starmodel.adapters.driven.stores.sql_fast import (
    DirectStatement,
    FastStatements,
    Plan,
    QueuedWrite,
    ShortWay,
    entity_from_update,
)
from starmodel.adapters.driven.stores.sql_guard import GuardedConnection, GuardedTransaction
from starmodel.adapters.driven.stores.sql_tables import (
    OWNER_COLUMN,
    VERSION_COLUMN,
    Statements,
    build_table,
    entity_from_row,
    key_adapter,
    primary_key,
    table_name,
)
from starmodel.adapters.driven.stores.sql_urls import normalize_url, server_name
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    ConfigurationError,
    StoreUnavailable,
)
from starmodel.core.journal import JournalEntry, JournalSettings
from starmodel.core.ports import EntityRepository, Handed

__all__ = [
    "DEFAULT_URL",
    "OWNER_COLUMN",
    "VERSION_COLUMN",
    "SqlDatabase",
    "SqlRepository",
    "build_table",
    "entity_from_row",
    "normalize_url",
    "statement_error",
    "table_name",
]

log = logging.getLogger("starmodel.sql")
E = TypeVar("E", bound=Entity)
DEFAULT_URL = "sqlite:///starmodel.db"
_CHECK_DEFERRED = text("SET CONSTRAINTS ALL IMMEDIATE")
_POOL_SIZE, _POOL_OVERFLOW = 5, 10  # connections kept, and opened beyond them when busy
class SqlDatabase:
    """One database: its async engine and StarModel's own ``MetaData`` (a table per entity).

    The engine is created here, never at import time, and is not FastSQLModel's global one.

    Args:
        url: the database (``DATABASE_URL``).
        timeout: seconds a PostgreSQL server may stay silent (see ``sql_guard``) before it
            counts as unreachable.
        probe_interval: seconds between checks of an unreachable database.
    """

    def __init__(
        self, url: str = DEFAULT_URL, *, echo: bool = False, timeout: float = 1.5, probe_interval: float = 1.0
    ) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.timeout = timeout
        # the server's handshake is bounded; the pool is never waited for (see ``connect``)
        self._connect_args: dict[str, Any] = {} if self.is_sqlite else {"connect_args": {"timeout": timeout}}
        bounds: dict[str, Any] = {} if self.is_sqlite else {
            "pool_size": _POOL_SIZE, "max_overflow": _POOL_OVERFLOW, "pool_timeout": timeout,
            **self._connect_args,
        }
        try:
            # no pre-ping (three round trips per event): a connection that died is reported
            # once (503) and dropped from the pool
            self.engine: AsyncEngine = create_async_engine(self.url, echo=echo, **bounds)
        except (NoSuchModuleError, ImportError) as exc:
            raise ConfigurationError(f"DATABASE_URL {url!r}: driver not installed ({exc})") from None
        # SQLite is a local file: nothing to wait for but its write lock (below)
        self.breaker = None if self.is_sqlite else CircuitBreaker(
            "the database", self._probe, timeout=timeout, interval=probe_interval,
            server=server_name(self.url),
        )
        # one slot per connection the pool may hold: calls beyond that wait here, for other
        # calls (as long as they take), not for the server (which each round trip is bounded by)
        self._slots = asyncio.Semaphore(_POOL_SIZE + _POOL_OVERFLOW)
        self._probe_engine: AsyncEngine | None = None
        self.metadata = MetaData()
        self._tables: dict[type[Entity], Table] = {}
        self._statements: dict[type[Entity], Statements] = {}
        self.short_way = ShortWay(self.engine.dialect)
        # SQLite allows one writer at a time: transactions take turns instead of failing
        self.write_lock = asyncio.Lock() if self.is_sqlite else None

    def table(self, entity_cls: type[Entity]) -> Table:
        """The table of a SQL entity, built from its fields on first use."""
        table = self._tables.get(entity_cls)
        if table is None:
            table = self._tables[entity_cls] = build_table(entity_cls, self.metadata)
        return table

    def statements(self, entity_cls: type[Entity]) -> Statements:
        """The entity's read / update / delete statements, built once (with bound parameters):
        building and keying SQLAlchemy statements costs more than running them here."""
        found = self._statements.get(entity_cls)
        if found is None:
            found = self._statements[entity_cls] = Statements.build(
                self.table(entity_cls), primary_key(entity_cls), sqlite=self.is_sqlite
            )
        return found

    def fast(self, entity_cls: type[Entity]) -> FastStatements | None:
        """The entity's statements for a plain event's short way (``sql_fast``); ``None`` on
        SQLite, or when one of its columns needs converting."""
        if self.is_sqlite:
            return None
        return self.short_way.statements(
            entity_cls, self.table(entity_cls), primary_key(entity_cls), self.statements(entity_cls).update
        )

    def tables_for(self, entities: list[type[Entity]]) -> list[Table]:
        return [self.table(cls) for cls in entities if cls.options().table]

    async def missing_tables(self, entities: list[type[Entity]]) -> list[str]:
        """Names of the entities' tables that do not exist in the database."""
        names = [t.name for t in self.tables_for(entities)]
        async with self.engine.connect() as conn:
            existing = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        return [name for name in names if name not in existing]

    async def create_tables(self, entities: list[type[Entity]]) -> list[str]:
        """Create the missing tables (development without migrations); returns their names."""
        tables = self.tables_for(entities)
        missing = set(await self.missing_tables(entities))
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(lambda sync: self.metadata.create_all(sync, tables=tables))
        except DBAPIError as exc:
            # another process (a second worker starting at the same time) made them first
            if "already exists" not in str(exc) or await self.missing_tables(entities):
                raise
            return []
        return [t.name for t in tables if t.name in missing]

    async def connect(self) -> GuardedConnection:
        """A connection from the pool, each of its round trips bounded (close it when done).

        Waits for a free slot of the pool while other calls hold them all; then, while the
        database is known to be away, ``StoreUnavailable`` at once, and if a new connection
        gets no answer within the timeout, ``StoreUnavailable`` (and the breaker opens).
        """
        if self.breaker is None:
            return GuardedConnection(await self.engine.connect(), None)
        await self._slots.acquire()
        try:
            conn = await self.breaker.call(self.engine.connect())
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, PoolTimeout):  # connections taken outside ``connect``: busy, not away
                raise StoreUnavailable("the database is busy (no free connection)", retry_after=1) from None
            if isinstance(exc, OSError | DBAPIError):
                raise self.breaker.trip(first_line(exc)) from None
            raise
        return GuardedConnection(conn, self.breaker, release=self._slots.release)

    async def _probe(self) -> None:
        """``SELECT 1`` on a connection kept for probes (those of the pool may all be busy,
        or stuck), its handshake and its statement each bounded by the timeout."""
        if self._probe_engine is None:
            self._probe_engine = create_async_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=self.timeout, **self._connect_args
            )
        async with GuardedConnection(await self._probe_engine.connect(), self.breaker, probing=True) as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self.breaker is not None:
            await self.breaker.close()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
            self._probe_engine = None
        await self.engine.dispose()


class SqlRepository(EntityRepository):
    """Rows of SQL entities within one transaction (a fresh repository per unit of work).

    A plain event's first attempt on PostgreSQL may take a shorter way (``sql_fast``): its
    record read without a lock and its one update committed on its own, version-checked.
    """

    def __init__(self, database: SqlDatabase) -> None:
        self.db = database
        self._conn: GuardedConnection | None = None
        self._tx: GuardedTransaction | None = None
        self._locked = False
        self._plan = Plan()
        self._handed: Handed | None = None
        self._queued: Callable[[Handed], None] | None = None

    def read_optimistically(self, queued: Callable[[Handed], None] | None = None) -> None:
        if self._conn is None and not self.db.is_sqlite:
            self._plan.allowed = True
            self._queued = queued

    def take_handed(self, handed: Handed) -> bool:
        entity, base = handed.entity, handed.token
        cls = type(entity)
        if not self._plan.may_start() or self.db.fast(cls) is None:
            return False
        if base is not None and (not isinstance(base, QueuedWrite) or base.refused()):
            return False
        typed = self._key(cls, entity._sm_key or "")
        if typed is None:
            return False
        self._plan.start(cls, typed, entity._sm_version)
        self._plan.base = base if base is not None and not base.outcome.done() else None
        return True

    def handed(self, entity_cls: type[Entity], key: str) -> Handed | None:
        found = self._handed
        if found is not None and type(found.entity) is entity_cls and found.entity._sm_key == key:
            return found
        return None

    async def _checkout(self) -> GuardedConnection:
        """The unit of work's connection (no transaction opened yet)."""
        if self._conn is None:
            if self.db.write_lock is not None:
                await self.db.write_lock.acquire()
                self._locked = True
            try:
                self._conn = await self.db.connect()
            except (OSError, DBAPIError) as exc:
                await self._release()
                raise StoreUnavailable(f"the database cannot be reached ({first_line(exc)})") from None
            except BaseException:
                await self._release()
                raise
        return self._conn

    async def _connection(self) -> GuardedConnection:
        """The connection, in the unit of work's transaction (begun now if need be, with what
        the short way did so far brought into it)."""
        conn = await self._checkout()
        if self._tx is None:
            try:
                self._tx = await conn.begin()
            except (OSError, DBAPIError) as exc:
                await self._release()
                raise StoreUnavailable(f"the database cannot be reached ({first_line(exc)})") from None
            except BaseException:
                await self._release()
                raise
            plan, self._plan = self._plan, Plan()
            if plan.started:
                await self._bring_in(plan)
        return conn

    async def _bring_in(self, plan: Plan) -> None:
        """Put what the short way did into the transaction just begun: its waiting update runs
        now (version-checked, the row locked until the end), or its unlocked read is read
        again ``FOR UPDATE`` and must not have changed."""
        cls = plan.entity_cls
        assert cls is not None
        if plan.base is not None and not await plan.base.settled():
            raise ConcurrencyError(f"{cls.__name__} {plan.key}: the state read was never stored")
        statements = self.db.statements(cls)
        if plan.update is not None:
            if (await self._run(statements.update, params=plan.update)).rowcount != 1:
                raise ConcurrencyError(f"{cls.__name__} {plan.key} was changed or deleted meanwhile")
        elif plan.version is not None:
            row = (await self._run(statements.get, params={"sm_key": plan.key})).mappings().first()
            if row is None or int(row[VERSION_COLUMN]) != plan.version:
                raise ConcurrencyError(f"{cls.__name__} {plan.key} was changed or deleted meanwhile")

    async def _run(
        self, statement: Any, entity_cls: type[Entity] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        conn = await self._connection()
        try:
            return await conn.execute(statement, params)
        except DBAPIError as exc:
            raise statement_error(exc, entity_cls) from None
        except OSError as exc:
            raise StoreUnavailable(f"the database cannot be reached ({exc})") from None

    async def _direct(
        self, statement: DirectStatement, entity_cls: type[Entity], values: dict[str, Any]
    ) -> Any:
        """One statement of the short way, committed on its own: the row it returned or ``None``."""
        conn = await self._checkout()
        try:
            return await conn.direct(statement.sql, statement.args(values))
        except DBAPIError as exc:
            if exc.connection_invalidated:
                await self._discard_connection()
            raise statement_error(exc, entity_cls) from None
        except OSError as exc:
            raise StoreUnavailable(f"the database cannot be reached ({exc})") from None

    def _key(self, entity_cls: type[Entity], key: str) -> Any:
        """The key in its column's type, or ``None`` if no record can have it (-> 404)."""
        adapter = key_adapter(entity_cls)
        try:
            typed = adapter.validate_python(key)
        except ValidationError:
            return None
        if isinstance(typed, int):
            ranges = self.db.statements(entity_cls).whole_numbers
            low, high = ranges.get(primary_key(entity_cls), (typed, typed))
            if not low <= typed <= high:
                return None
        return typed

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        typed = self._key(entity_cls, key)
        if typed is None:
            return None
        if self._plan.may_start():
            await self._checkout()
            fast = self.db.fast(entity_cls)
            if fast is not None:
                found = await self._direct(fast.read, entity_cls, {"sm_key": typed})
                entity = None if found is None else entity_from_row(entity_cls, found)
                self._plan.start(entity_cls, typed, None if entity is None else entity._sm_version)
                return entity
        query = self.db.statements(entity_cls).get
        row = (await self._run(query, params={"sm_key": typed})).mappings().first()
        return None if row is None else entity_from_row(entity_cls, row)

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        table = self.db.table(entity_cls)
        pk = primary_key(entity_cls)
        query = select(table).order_by(table.c[pk]).offset(offset).limit(limit)
        if owner is not None and entity_cls.options().private:
            query = query.where(table.c[OWNER_COLUMN] == owner)
        rows = (await self._run(query)).mappings().all()
        return [entity_from_row(entity_cls, row) for row in rows]

    async def save(self, entity: Entity) -> None:
        cls = type(entity)
        table = self.db.table(cls)
        pk = primary_key(cls)
        values = {name: getattr(entity, name) for name in cls.model_fields}
        check_whole_numbers(values, self.db.statements(cls).whole_numbers)
        if cls.options().private:
            values[OWNER_COLUMN] = entity._sm_owner
        if entity._sm_version == 0:
            if values[pk] is None:
                del values[pk]  # the database assigns it
            result = await self._run(table.insert().values(**values, **{VERSION_COLUMN: 1}), cls)
            if getattr(entity, pk) is None:
                setattr(entity, pk, result.inserted_primary_key[0])
            entity._sm_version = 1
        else:
            version = entity._sm_version
            if isinstance(values.get("updated_at"), datetime):  # BaseTable's convention
                values["updated_at"] = datetime.now(UTC)
                object.__setattr__(entity, "updated_at", values["updated_at"])
            values[VERSION_COLUMN] = version + 1
            statements = self.db.statements(cls)
            params = {f"new_{name}": values[name] for name in statements.columns}
            params.update(sm_key=values[pk], sm_read=version)
            if self._tx is None and self._plan.may_defer(cls, values[pk], version):
                self._plan.update = params  # run by ``commit``, or in the transaction if one begins
            elif (await self._run(statements.update, params=params)).rowcount != 1:
                raise ConcurrencyError(f"{cls.__name__} {values[pk]} was changed or deleted meanwhile")
            entity._sm_version = version + 1
        entity._sm_key = str(getattr(entity, pk))

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        typed = self._key(entity_cls, key)
        if typed is None:
            return False
        result = await self._run(self.db.statements(entity_cls).delete, params={"sm_key": typed})
        return bool(result.rowcount)

    async def record(self, entries: Sequence[JournalEntry], settings: dict[str, JournalSettings]) -> bool:
        """Journal entries go into the journal table, in this transaction."""
        from starmodel.adapters.driven.journal.sql import journal_writes

        for statement, params in journal_writes(self.db, entries, settings):
            await self._run(statement, params=params)
        return True

    async def prepare(self) -> None:
        """Check now what PostgreSQL would otherwise check at ``COMMIT`` (deferred
        constraints), so that a refusal comes before another store commits. Version checks
        and unique constraints refused at ``save`` already, and the open transaction holds the
        rows it wrote until it ends. (SQLite checks nothing more at commit unless deferred
        foreign keys are switched on, which StarModel does not do.)"""
        if self._plan.update is not None:
            await self._connection()  # the waiting update, now in a transaction
        if self._tx is not None and not self.db.is_sqlite:
            await self._run(_CHECK_DEFERRED)

    async def commit(self) -> None:
        try:
            if self._tx is None and self._plan.update is not None:
                await self._commit_alone()
            if self._tx is not None:
                await self._tx.commit()
        except (DBAPIError, OSError) as exc:
            # SQLite keeps the transaction open after a refused COMMIT: the connection must
            # not go back to the pool with it (a later commit there would apply it)
            await self._discard_connection()
            if isinstance(exc, IntegrityError):  # a deferred constraint
                raise integrity_error(exc, None) from None
            if isinstance(exc, DBAPIError):
                raise statement_error(exc) from None
            raise StoreUnavailable(f"the database cannot be reached ({exc})") from None
        finally:
            await self._release()

    async def _commit_alone(self) -> None:
        """The short way's commit: the one update, checking the version, in a transaction of
        its own, through the record's queue (``sql_fast``); the row it returns is kept for
        the next event on the record. Once the write has its place in the queue, the next
        event may start from the row it will store (``queued``), when that row is exact."""
        plan, self._plan = self._plan, Plan()
        cls, values = plan.entity_cls, plan.update
        fast = None if cls is None else self.db.fast(cls)
        assert cls is not None and values is not None and fast is not None
        write, queued = QueuedWrite(values, plan.base), _nothing
        if self._queued is not None and fast.exact:
            stores = entity_from_update(cls, self.db.statements(cls).columns, values)
            queued = partial(self._queued, Handed(stores, write, write.settled))
        try:
            queue = self.db.short_way.queue(cls, plan.key)
            row = await queue.write(write, partial(self._direct, fast.update, cls), queued)
        except ConcurrencyError:
            raise ConcurrencyError(f"{cls.__name__} {plan.key} was changed or deleted meanwhile") from None
        self._handed = Handed(entity_from_row(cls, row))

    async def _discard_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError, OSError):  # gone already
                await self._conn.invalidate()

    async def rollback(self) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        except (DBAPIError, OSError):
            pass  # the connection is gone; nothing was committed
        finally:
            await self._release()

    async def _release(self) -> None:
        conn, self._conn, self._tx = self._conn, None, None
        self._plan = Plan()
        try:
            if conn is not None:
                await conn.close()
        finally:
            if self._locked and self.db.write_lock is not None:
                self._locked = False
                self.db.write_lock.release()


def _nothing() -> None:
    """No one to tell."""

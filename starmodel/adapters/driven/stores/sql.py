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
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    bindparam,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.main import get_column_from_field

from starmodel.adapters.driven.breaker import CircuitBreaker
from starmodel.adapters.driven.stores.sql_guard import GuardedConnection, GuardedTransaction
from starmodel.core.entity import Entity
from starmodel.core.errors import (
    ConcurrencyError,
    ConfigurationError,
    StarModelError,
    StoreUnavailable,
    ValidationFailed,
)
from starmodel.core.ports import EntityRepository

__all__ = [
    "OWNER_COLUMN",
    "VERSION_COLUMN",
    "SqlDatabase",
    "SqlRepository",
    "entity_from_row",
    "normalize_url",
    "statement_error",
]

log = logging.getLogger("starmodel.sql")
E = TypeVar("E", bound=Entity)
VERSION_COLUMN = "sm_version"
OWNER_COLUMN = "sm_owner"
DEFAULT_URL = "sqlite:///starmodel.db"
_CHECK_DEFERRED = text("SET CONSTRAINTS ALL IMMEDIATE")
_POOL_SIZE, _POOL_OVERFLOW = 5, 10  # connections kept, and opened beyond them when busy
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str) -> str:
    """``DATABASE_URL`` with an async driver (``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"DATABASE_URL {url!r} is not a database URL (e.g. sqlite:///app.db or "
            "postgresql://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"DATABASE_URL: {backend!r} databases are not supported (sqlite, postgresql)"
        )
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


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
            "the database", self._probe, timeout=timeout, interval=probe_interval, server=_server(self.url)
        )
        # one slot per connection the pool may hold: calls beyond that wait here, for other
        # calls (as long as they take), not for the server (which each round trip is bounded by)
        self._slots = asyncio.Semaphore(_POOL_SIZE + _POOL_OVERFLOW)
        self._probe_engine: AsyncEngine | None = None
        self.metadata = MetaData()
        self._tables: dict[type[Entity], Table] = {}
        self._statements: dict[type[Entity], _Statements] = {}
        # SQLite allows one writer at a time: transactions take turns instead of failing
        self.write_lock = asyncio.Lock() if self.is_sqlite else None

    def table(self, entity_cls: type[Entity]) -> Table:
        """The table of a SQL entity, built from its fields on first use."""
        table = self._tables.get(entity_cls)
        if table is None:
            table = self._tables[entity_cls] = build_table(entity_cls, self.metadata)
        return table

    def statements(self, entity_cls: type[Entity]) -> _Statements:
        """The entity's read / update / delete statements, built once (with bound parameters):
        building and keying SQLAlchemy statements costs more than running them here."""
        found = self._statements.get(entity_cls)
        if found is None:
            found = self._statements[entity_cls] = _Statements.build(
                self.table(entity_cls), _pk(entity_cls), sqlite=self.is_sqlite
            )
        return found

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
                raise self.breaker.trip(_first_line(exc)) from None
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


@dataclass(frozen=True)
class _Statements:
    get: Any
    update: Any
    delete: Any
    columns: tuple[str, ...]  # the columns an update sets (all but the primary key)
    whole_numbers: dict[str, tuple[int, int]]  # integer column -> the lowest and highest value it holds

    @classmethod
    def build(cls, table: Table, pk: str, *, sqlite: bool) -> _Statements:
        get = select(table).where(table.c[pk] == bindparam("sm_key"))
        if not sqlite:
            # a record read in a transaction is about to be changed: writers of one record
            # take turns in the database (SQLite has one writer at a time anyway)
            get = get.with_for_update()
        columns = tuple(c.name for c in table.columns if c.name != pk)
        update = (
            table.update()
            .where(and_(table.c[pk] == bindparam("sm_key"), table.c[VERSION_COLUMN] == bindparam("sm_read")))
            .values({name: bindparam(f"new_{name}") for name in columns})
        )
        delete = table.delete().where(table.c[pk] == bindparam("sm_key"))
        whole_numbers = {
            c.name: _int_range(c.type, sqlite) for c in table.columns if isinstance(c.type, Integer)
        }
        return cls(get, update, delete, columns, whole_numbers)


def _int_range(column_type: Integer, sqlite: bool) -> tuple[int, int]:
    """The values an integer column holds: 64 bits in SQLite whatever its declared type; in
    PostgreSQL 16, 32 or 64 by type."""
    if sqlite or isinstance(column_type, BigInteger):
        bits = 64
    else:
        bits = 16 if isinstance(column_type, SmallInteger) else 32
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def table_name(entity_cls: type[Entity]) -> str:
    return str(entity_cls.model_config.get("table_name") or entity_cls.namespace())


def build_table(entity_cls: type[Entity], metadata: MetaData) -> Table:
    columns: list[Column[Any]] = []
    for name, info in entity_cls.model_fields.items():
        try:
            column = get_column_from_field(info)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"{entity_cls.__name__}.{name}: no SQL column type for {info.annotation!r} ({exc}); "
                "give it one with sqlmodel.Field(sa_type=...)"
            ) from None
        column.name = column.key = name
        columns.append(column)
    if VERSION_COLUMN in entity_cls.model_fields:
        raise ConfigurationError(f"{entity_cls.__name__}: the field name {VERSION_COLUMN!r} is reserved")
    columns.append(Column(VERSION_COLUMN, Integer, nullable=False, default=1, server_default="1"))
    if entity_cls.options().private:
        columns.append(Column(OWNER_COLUMN, String(64), nullable=True, index=True))
    return Table(table_name(entity_cls), metadata, *columns)


class SqlRepository(EntityRepository):
    """Rows of SQL entities within one transaction (a fresh repository per unit of work)."""

    def __init__(self, database: SqlDatabase) -> None:
        self.db = database
        self._conn: GuardedConnection | None = None
        self._tx: GuardedTransaction | None = None
        self._locked = False

    async def _connection(self) -> GuardedConnection:
        if self._conn is None:
            if self.db.write_lock is not None:
                await self.db.write_lock.acquire()
                self._locked = True
            try:
                self._conn = await self.db.connect()
                self._tx = await self._conn.begin()
            except (OSError, DBAPIError) as exc:
                await self._release()
                raise StoreUnavailable(f"the database cannot be reached ({_first_line(exc)})") from None
            except BaseException:
                await self._release()
                raise
        return self._conn

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

    def _key(self, entity_cls: type[Entity], key: str) -> Any:
        """The key in its column's type, or ``None`` if no record can have it (-> 404)."""
        adapter = _key_adapter(entity_cls)
        try:
            typed = adapter.validate_python(key)
        except ValidationError:
            return None
        if isinstance(typed, int):
            low, high = self.db.statements(entity_cls).whole_numbers.get(_pk(entity_cls), (typed, typed))
            if not low <= typed <= high:
                return None
        return typed

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        typed = self._key(entity_cls, key)
        if typed is None:
            return None
        query = self.db.statements(entity_cls).get
        row = (await self._run(query, params={"sm_key": typed})).mappings().first()
        return None if row is None else entity_from_row(entity_cls, row)

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        table = self.db.table(entity_cls)
        pk = _pk(entity_cls)
        query = select(table).order_by(table.c[pk]).offset(offset).limit(limit)
        if owner is not None and entity_cls.options().private:
            query = query.where(table.c[OWNER_COLUMN] == owner)
        rows = (await self._run(query)).mappings().all()
        return [entity_from_row(entity_cls, row) for row in rows]

    async def save(self, entity: Entity) -> None:
        cls = type(entity)
        table = self.db.table(cls)
        pk = _pk(cls)
        values = {name: getattr(entity, name) for name in cls.model_fields}
        _check_whole_numbers(values, self.db.statements(cls).whole_numbers)
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
            if (await self._run(statements.update, params=params)).rowcount != 1:
                raise ConcurrencyError(f"{cls.__name__} {values[pk]} was changed or deleted meanwhile")
            entity._sm_version = version + 1
        entity._sm_key = str(getattr(entity, pk))

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        typed = self._key(entity_cls, key)
        if typed is None:
            return False
        result = await self._run(self.db.statements(entity_cls).delete, params={"sm_key": typed})
        return bool(result.rowcount)

    async def prepare(self) -> None:
        """Check now what PostgreSQL would otherwise check at ``COMMIT`` (deferred
        constraints), so that a refusal comes before another store commits. Version checks
        and unique constraints refused at ``save`` already, and the open transaction holds the
        rows it wrote until it ends. (SQLite checks nothing more at commit unless deferred
        foreign keys are switched on, which StarModel does not do.)"""
        if self._tx is not None and not self.db.is_sqlite:
            await self._run(_CHECK_DEFERRED)

    async def commit(self) -> None:
        try:
            if self._tx is not None:
                await self._tx.commit()
        except (DBAPIError, OSError) as exc:
            # SQLite keeps the transaction open after a refused COMMIT: the connection must
            # not go back to the pool with it (a later commit there would apply it)
            await self._discard_connection()
            if isinstance(exc, IntegrityError):  # a deferred constraint
                raise _integrity_error(exc, None) from None
            if isinstance(exc, DBAPIError):
                raise statement_error(exc) from None
            raise StoreUnavailable(f"the database cannot be reached ({exc})") from None
        finally:
            await self._release()

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
        try:
            if conn is not None:
                await conn.close()
        finally:
            if self._locked and self.db.write_lock is not None:
                self._locked = False
                self.db.write_lock.release()


_ADAPTERS: dict[type[Entity], TypeAdapter[Any]] = {}


def _pk(entity_cls: type[Entity]) -> str:
    pk = entity_cls.options().primary_key
    if pk is None:
        raise ConfigurationError(f"{entity_cls.__name__} has no primary key")
    return pk


def _key_adapter(entity_cls: type[Entity]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(entity_cls)
    if adapter is None:
        annotation = entity_cls.model_fields[_pk(entity_cls)].annotation
        adapter = _ADAPTERS[entity_cls] = TypeAdapter(Any if annotation is None else annotation)
    return adapter


def entity_from_row(entity_cls: type[E], row: Any) -> E:
    """The entity of a row of its table (version, owner and key set)."""
    values = {name: row[name] for name in entity_cls.model_fields}
    entity = entity_cls.model_validate(values)
    entity._sm_version = int(row[VERSION_COLUMN])
    if entity_cls.options().private:
        entity._sm_owner = row[OWNER_COLUMN]
    entity._sm_key = str(values[entity_cls.options().primary_key or ""])
    return entity


def _sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE code of a PostgreSQL error (``""`` if the driver gives none)."""
    for source in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


_UNIQUE = (
    re.compile(r"Key \((?P<field>[^)]+)\)=\((?P<value>.*?)\) already exists"),
    re.compile(r"UNIQUE constraint failed: \w+\.(?P<field>\w+)"),
)


def _integrity_error(
    exc: IntegrityError, entity_cls: type[Entity] | None
) -> ValidationFailed | ConcurrencyError:
    """A uniqueness violation names its field (422); on the primary key it means another
    writer inserted that record first (a conflict, like any other lost race)."""
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    text = " ".join(str(part) for part in (orig, getattr(cause, "detail", None) or "", exc) if part)
    for pattern in _UNIQUE:
        found = pattern.search(text)
        if found:
            field = found.group("field")
            if entity_cls is not None and field == entity_cls.options().primary_key:
                return ConcurrencyError(f"{entity_cls.__name__} {field} is taken by another record")
            return ValidationFailed({field: "This value is already taken"}, "Not saved")
    return ValidationFailed({"__root__": _first_line(exc)}, "Not saved: the database refused it")


def _check_whole_numbers(values: dict[str, Any], ranges: dict[str, tuple[int, int]]) -> None:
    """Refuse a whole number its column cannot hold before the driver sees it (SQLite's
    raises ``OverflowError``, PostgreSQL's quotes the value in its error)."""
    errors = {
        name: f"must be between {low} and {high}"
        for name, (low, high) in ranges.items()
        if isinstance(values.get(name), int) and not low <= values[name] <= high
    }
    if errors:
        raise ValidationFailed(errors, "Not saved")


def statement_error(exc: DBAPIError, entity_cls: type[Entity] | None = None) -> StarModelError:
    """What a failed statement means to the caller, in words that quote neither the statement
    nor its values (the driver's text is logged instead): a lost race is a conflict (re-run), a
    refused value 422, a missing table or column, or a database that went away, 503; anything
    else is a failure of the query (500), not the database being down."""
    text = _first_line(exc)
    state = _sqlstate(exc)
    lowered = text.lower()
    if isinstance(exc, IntegrityError):
        return _integrity_error(exc, entity_cls)
    if state in ("40001", "40P01"):  # serialization failure, deadlock: re-run
        return ConcurrencyError(f"the database asked to retry ({text})")
    if isinstance(exc, DataError) or state.startswith("22"):  # data exception
        log.info("the database refused a value: %s", text)
        return ValidationFailed({"__root__": "a value the database cannot store"}, "Not saved")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"a table is missing ({text}); run `starmodel migrate`")
    if "no such column" in lowered or ("column" in lowered and "does not exist" in lowered):
        return StoreUnavailable(f"the database schema is behind the code ({text}); run `starmodel migrate`")
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError) or state[:2] in (
        "08",  # connection exception
        "53",  # insufficient resources
        "57",  # operator intervention (shutdown, cancelled)
    ):
        log.warning("the database is unavailable: %s", text)
        return StoreUnavailable("the database is unavailable")
    log.error("a statement failed in the database: %s", text)
    return StarModelError("the database could not run a query; nothing was changed")


def _server(url: str) -> str:
    """Which PostgreSQL server a URL names, without credentials (for messages)."""
    parsed = make_url(url)
    return f"PostgreSQL at {parsed.host or 'localhost'}:{parsed.port or 5432}"

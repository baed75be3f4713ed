"""The table of a SQL entity: its columns (SQLModel's mapping of the fields, plus the version
and owner columns), the statements the repository runs on it, and entities read from its rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter
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
    select,
)
from sqlmodel.main import get_column_from_field

from starmodel.adapters.driven.stores.sql_files import StoredFileColumn
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError
from starmodel.core.files import file_rules

__all__ = [
    "OWNER_COLUMN",
    "VERSION_COLUMN",
    "Statements",
    "build_table",
    "entity_from_row",
    "key_adapter",
    "primary_key",
    "table_name",
]

E = TypeVar("E", bound=Entity)
VERSION_COLUMN = "sm_version"
OWNER_COLUMN = "sm_owner"


@dataclass(frozen=True)
class Statements:
    get: Any
    update: Any
    delete: Any
    columns: tuple[str, ...]  # the columns an update sets (all but the primary key)
    whole_numbers: dict[str, tuple[int, int]]  # integer column -> the lowest and highest value it holds

    @classmethod
    def build(cls, table: Table, pk: str, *, sqlite: bool) -> Statements:
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
        if file_rules(info) is not None:  # a file field: the file's facts, as JSON
            columns.append(Column(name, StoredFileColumn(), nullable=True))
            continue
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


_ADAPTERS: dict[type[Entity], TypeAdapter[Any]] = {}


def primary_key(entity_cls: type[Entity]) -> str:
    pk = entity_cls.options().primary_key
    if pk is None:
        raise ConfigurationError(f"{entity_cls.__name__} has no primary key")
    return pk


def key_adapter(entity_cls: type[Entity]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(entity_cls)
    if adapter is None:
        annotation = entity_cls.model_fields[primary_key(entity_cls)].annotation
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

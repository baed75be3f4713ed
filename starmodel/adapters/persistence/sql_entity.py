"""The public ``Entity``: the domain's ``Entity`` with a metaclass that also satisfies
SQLModel's, so ``class Product(Entity, BaseTable, table=True)`` (FastSQLModel's ``BaseTable``
is a SQLModel class) can be declared. The SQLModel base's columns become entity fields
(see ``core.entity._adopt_table_bases``); the entity stays a plain pydantic model that the SQL
repository maps to its table."""

from __future__ import annotations

from typing import Any

from sqlmodel.main import SQLModelMetaclass

from starmodel.core.entity import Entity as DomainEntity
from starmodel.core.entity import EntityMeta

__all__ = ["Entity", "SqlCompatibleMeta"]


class SqlCompatibleMeta(EntityMeta, SQLModelMetaclass):  # type: ignore[misc]
    """Python wants one metaclass deriving from every base's; this is it. It builds classes
    exactly as ``EntityMeta`` does (SQLModel's class builder never runs)."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> None:
        kwargs.pop("table", None)
        type.__init__(cls, name, bases, namespace)


class Entity(DomainEntity, metaclass=SqlCompatibleMeta):
    """Base class of every StarModel entity (see ``starmodel.core.entity.Entity``)."""

    model_config = {"abstract": True}  # type: ignore[typeddict-unknown-key]

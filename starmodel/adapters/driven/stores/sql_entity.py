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
    """Base class of every StarModel entity: typed fields (pydantic) and ``@event`` methods.

    StarModel reads these keys of ``model_config`` (all optional):

    - ``store``: a ``StateStore``; ``SERVER_MEMORY`` by default, ``SERVER_SQL`` for a class
      declared with ``table=True``.
    - ``scope``: ``session`` (one instance per browser session, the default), ``global`` (one
      instance shared by everybody) or ``id`` (records addressed by key, as SQL entities are).
    - ``ttl``: seconds after its last change an instance is forgotten (its defaults come back).
    - ``namespace``: the name of its signals (default: the class name in snake_case).
    - ``private``: ``True`` for records that belong to the browser session that created them.
    - ``policy``: who may ``read``, ``create``, ``update``, ``delete`` or run ``events``
      (``"*"``: the rest); each rule is ``True``, ``False`` or a function of the ``CallContext``.
    - ``backend``: with ``StateStore.CUSTOM``, the name of the persistence plugin to use.
    - ``journal``: ``True`` (or ``{"keep": n, "max_age": seconds}``) to journal every committed
      change, with history and undo (see ``docs/journal.md``).
    """

    model_config = {"abstract": True}  # type: ignore[typeddict-unknown-key]

"""The Alembic environment of a StarModel app: what ``env.py`` migrates and how it runs.

- :class:`MigrationTarget`: the database URL (async driver) and a ``MetaData`` holding exactly
  the app's tables (``sm_version`` included), plus what a run did (revision made, applied).
- :func:`run_env`: the body of every ``env.py``: online through an async engine
  (``connection.run_sync``), or offline (``alembic upgrade head --sql``). Autogenerate renders
  batch operations (SQLite can then ALTER, and the same files run on PostgreSQL) and skips
  revisions with no change when asked (see ``autogenerate``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import ops
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, MetaData, Table

from starmodel.adapters.driven.migrations.autogenerate import (
    create_all,
    derived_message,
    describe_ops,
    fill_server_defaults,
    render_item,
    server_default,
)
from starmodel.adapters.driven.migrations.engine import (
    VERSION_TABLE,
    migration_engine,
    run_async,
    sync_url,
)
from starmodel.adapters.driven.stores.sql import VERSION_COLUMN, SqlDatabase
from starmodel.core.entity import Entity

__all__ = ["TARGET_ATTRIBUTE", "AppliedMigration", "MigrationTarget", "run_env"]

# the key of Alembic's ``Config.attributes`` under which a command hands env.py its target
TARGET_ATTRIBUTE = "starmodel_target"


@dataclass
class AppliedMigration:
    """One revision a run applied (``upgrade``) or rolled back."""

    revision: str
    message: str
    upgrade: bool


@dataclass
class MigrationTarget:
    """What ``env.py`` migrates: ``url`` (async driver) and the app's tables in ``metadata``.

    ``defaults`` are the entity fields' scalar defaults by ``(table, column)``; a command
    also reads back what a run did (``changes`` of a new revision, the revisions ``applied``).
    """

    url: str
    metadata: MetaData
    defaults: dict[tuple[str, str], Any] = field(default_factory=dict)
    skip_empty: bool = False
    changes: list[str] = field(default_factory=list)
    applied: list[AppliedMigration] = field(default_factory=list)

    @classmethod
    def for_entities(cls, database: SqlDatabase, entities: Iterable[type[Entity]]) -> MigrationTarget:
        """The tables of ``entities`` (SQL ones), copied into a ``MetaData`` of their own."""
        metadata = MetaData()
        defaults: dict[tuple[str, str], Any] = {}
        sql_entities = [e for e in entities if e.options().table]
        for entity_cls, table in zip(sql_entities, database.tables_for(sql_entities), strict=True):
            table.to_metadata(metadata)
            for name, info in entity_cls.model_fields.items():
                if not info.is_required():
                    value = server_default(info.get_default(call_default_factory=False))
                    if value is not None:
                        defaults[(table.name, name)] = value
        return cls(url=database.url, metadata=metadata, defaults=defaults)

    # -- hooks given to Alembic

    def include_object(
        self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        """Tables in the database but not in the app are only dropped if they were StarModel
        entity tables (they have an ``sm_version`` column); other tables are left alone."""
        if type_ == "table" and reflected and compare_to is None:
            return isinstance(obj, Table) and VERSION_COLUMN in obj.c
        return True

    def process_revision_directives(
        self, context: MigrationContext, revision: Any, directives: list[Any]
    ) -> None:
        if not directives or not isinstance(directives[0], ops.MigrationScript):
            return
        script = directives[0]
        scripts = getattr(context, "script", None)
        if isinstance(scripts, ScriptDirectory) and not scripts.get_heads():
            # the first migration creates every table, whatever the database holds already
            # (tables created at start without migrations are adopted by `Migrations.adopt`)
            creation = create_all(self.metadata)
            script.upgrade_ops = creation
            script.downgrade_ops = creation.reverse()
        upgrade_ops = script.upgrade_ops
        if upgrade_ops is None or upgrade_ops.is_empty():
            self.changes = []
            if self.skip_empty:
                directives[:] = []
            return
        fill_server_defaults(self.defaults)(context, revision, directives)
        self.changes = describe_ops(upgrade_ops.ops)
        if not script.message:
            script.message = derived_message(self.changes)

    def on_version_apply(
        self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        script = step.up_revision
        revision = step.up_revision_id or ""
        message = str(script.doc) if isinstance(script, Script) else ""
        self.applied.append(AppliedMigration(revision, message, step.is_upgrade))


def run_env(context: EnvironmentContext, target: MigrationTarget) -> None:
    """Run the migrations Alembic asked for (the whole of a StarModel ``env.py``)."""
    options: dict[str, Any] = {
        "target_metadata": target.metadata,
        "render_as_batch": True,  # SQLite needs batch ALTERs; PostgreSQL runs them as plain ALTERs
        "compare_type": True,
        "include_object": target.include_object,
        "render_item": render_item,
        "process_revision_directives": target.process_revision_directives,
        "version_table": VERSION_TABLE,
    }
    if context.is_offline_mode():
        context.configure(
            url=sync_url(target.url),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, on_version_apply=target.on_version_apply, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = migration_engine(target.url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    run_async(run())

"""Alembic migrations of the tables of an app's SQL entities.

- :class:`MigrationTarget`: what a migrations folder's ``env.py`` migrates: the database URL
  (async driver) and a ``MetaData`` holding exactly the app's tables (``sm_version`` included).
- :func:`run_env`: the body of that ``env.py``: online through an async engine
  (``connection.run_sync``), or offline (``alembic upgrade head --sql``). Autogenerate renders
  batch operations (SQLite can then ALTER, and the same files run on PostgreSQL), skips
  revisions with no change when asked, and gives a new ``NOT NULL`` column the entity field's
  default as its server default, so existing rows can take it.
- :class:`Migrations`: one migrations folder and one database: write the folder, status,
  make a revision, upgrade, downgrade, drop the app's tables.

The app itself is found by the caller (the CLI); nothing here imports it.
"""

from __future__ import annotations

import asyncio
import configparser
import enum
import logging
import threading
from argparse import Namespace
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import rewriter
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData, Table, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.schema import DefaultClause
from sqlmodel.sql.sqltypes import AutoString

from starmodel.adapters.persistence.sql import VERSION_COLUMN, SqlDatabase, normalize_url
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError, StoreUnavailable

__all__ = [
    "VERSION_TABLE",
    "MigrationError",
    "MigrationStatus",
    "MigrationTarget",
    "Migrations",
    "display_url",
    "read_app_target",
    "run_env",
]

T = TypeVar("T")
VERSION_TABLE = "alembic_version"
INI_NAME = "alembic.ini"
APP_OPTION = "starmodel_app"
TARGET_ATTRIBUTE = "starmodel_target"
log = logging.getLogger("starmodel.migrations")


class MigrationError(StarModelError):
    """A migration command cannot run or failed; the message says why and what to do."""


# --------------------------------------------------------------------------- env.py runtime


@dataclass
class Step:
    """One applied (or rolled back) revision."""

    revision: str
    message: str
    upgrade: bool


@dataclass
class MigrationTarget:
    """What ``env.py`` migrates: ``url`` (async driver) and the app's tables in ``metadata``.

    ``defaults`` are the entity fields' scalar defaults by ``(table, column)``; the CLI also
    reads back what a run did (``changes`` of a new revision, ``steps`` applied).
    """

    url: str
    metadata: MetaData
    defaults: dict[tuple[str, str], Any] = field(default_factory=dict)
    skip_empty: bool = False
    changes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

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
                    value = _server_default(info.get_default(call_default_factory=False))
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
            create_all = _create_all(self.metadata)
            script.upgrade_ops = create_all
            script.downgrade_ops = create_all.reverse()
        upgrade_ops = script.upgrade_ops
        if upgrade_ops is None or upgrade_ops.is_empty():
            self.changes = []
            if self.skip_empty:
                directives[:] = []
            return
        _fill_server_defaults(self.defaults)(context, revision, directives)
        self.changes = describe_ops(upgrade_ops.ops)
        if not script.message:
            script.message = _derived_message(self.changes)

    def on_version_apply(
        self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        script = step.up_revision
        revision = step.up_revision_id or ""
        message = str(script.doc) if isinstance(script, Script) else ""
        self.steps.append(Step(revision, message, step.is_upgrade))


def run_env(context: EnvironmentContext, target: MigrationTarget) -> None:
    """Run the migrations Alembic asked for (the whole of a StarModel ``env.py``)."""
    options: dict[str, Any] = {
        "target_metadata": target.metadata,
        "render_as_batch": True,  # SQLite needs batch ALTERs; PostgreSQL runs them as plain ALTERs
        "compare_type": True,
        "include_object": target.include_object,
        "render_item": _render_item,
        "process_revision_directives": target.process_revision_directives,
        "version_table": VERSION_TABLE,
    }
    if context.is_offline_mode():
        context.configure(
            url=_sync_url(target.url),
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
        engine = _engine(target.url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    run_async(run())


def _create_all(metadata: MetaData) -> ops.UpgradeOps:
    operations: list[ops.MigrateOperation] = []
    for table in metadata.sorted_tables:
        operations.append(ops.CreateTableOp.from_table(table))
        indexes = sorted(table.indexes, key=lambda index: str(index.name))
        if indexes:
            operations.append(ops.ModifyTableOps(
                table.name, [ops.CreateIndexOp.from_index(index) for index in indexes], schema=table.schema
            ))
    return ops.UpgradeOps(ops=operations)


def describe_ops(operations: Iterable[Any]) -> list[str]:
    """One line per schema change of an autogenerated revision (``add column todo.done``)."""
    lines: list[str] = []
    for op in operations:
        if isinstance(op, ops.ModifyTableOps):
            lines.extend(describe_ops(op.ops))
        elif isinstance(op, ops.CreateTableOp):
            lines.append(f"create table {op.table_name}")
        elif isinstance(op, ops.DropTableOp):
            lines.append(f"drop table {op.table_name}")
        elif isinstance(op, ops.AddColumnOp):
            lines.append(f"add column {op.table_name}.{op.column.name}")
        elif isinstance(op, ops.DropColumnOp):
            lines.append(f"drop column {op.table_name}.{op.column_name}")
        elif isinstance(op, ops.AlterColumnOp):
            lines.append(f"alter column {op.table_name}.{op.column_name}")
        elif isinstance(op, ops.CreateIndexOp):
            lines.append(f"create index {op.index_name} on {op.table_name}")
        elif isinstance(op, ops.DropIndexOp):
            lines.append(f"drop index {op.index_name}")
        else:
            name = type(op).__name__.removesuffix("Op")
            table = getattr(op, "table_name", None)
            lines.append(f"{name}{f' on {table}' if table else ''}")
    return lines


def _derived_message(changes: list[str]) -> str:
    """``create table todo``; ``add column todo.done and 2 more``."""
    first = changes[0] if changes else "update schema"
    return f"{first} and {len(changes) - 1} more" if len(changes) > 1 else first


def _server_default(value: Any) -> str | None:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _fill_server_defaults(defaults: dict[tuple[str, str], Any]) -> rewriter.Rewriter:
    """A new NOT NULL column gets its field's default on existing rows (as a server default)."""
    writer = rewriter.Rewriter()

    @writer.rewrites(ops.AddColumnOp)
    def add_column(context: Any, revision: Any, op: ops.AddColumnOp) -> ops.AddColumnOp:
        column = op.column
        default = defaults.get((op.table_name, column.name))
        if column.nullable or column.server_default is not None or default is None:
            return op
        column = column._copy()
        column.server_default = DefaultClause(default)
        return ops.AddColumnOp(op.table_name, column, schema=op.schema)

    return writer


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """SQLModel's ``AutoString`` is rendered as ``sa.String`` (migrations need no sqlmodel)."""
    if type_ == "type":
        if isinstance(obj, AutoString):
            return f"sa.String(length={obj.length!r})" if obj.length else "sa.String()"
        if type(obj).__module__.startswith("sqlmodel"):
            autogen_context.imports.add("import sqlmodel")
    return False


def _sync_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL for messages: no driver, no password (``postgresql://me@db:5432/app``)."""
    try:
        parsed = make_url(url)
    except Exception:
        return "<invalid url>"
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def _engine(url: str) -> Any:
    args: dict[str, Any] = {"timeout": 10} if not url.startswith("sqlite") else {}
    return create_async_engine(url, poolclass=pool.NullPool, connect_args=args)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end from sync code (in a thread if a loop already runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[T] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0][:300] if text_ else type(exc).__name__


# --------------------------------------------------------------------------- the folder

ENV_PY = '''\
"""Alembic environment of a StarModel app (written by `starmodel db init`).

The tables come from the app's SQL entities, the database from its settings (DATABASE_URL).
The app is the one recorded as `starmodel_app` in alembic.ini next to this file.
"""

from alembic import context

from starmodel.adapters.persistence.migrations import run_env
from starmodel.cli.db import migration_target

run_env(context, migration_target(context.config))
'''

SCRIPT_MAKO = '''\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

INI = """\
# Alembic settings of a StarModel app (written by `starmodel db init`).
# `starmodel db ...` reads them; plain Alembic works too, run from the project folder:
#   alembic -c {folder}/alembic.ini upgrade head
# The database is the app's (DATABASE_URL), not a sqlalchemy.url here.
[alembic]
script_location = %(here)s
prepend_sys_path = .
path_separator = os
file_template = %%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s
# the app whose SQL entities these migrations follow (module, module:attr or file.py)
starmodel_app = {app}
"""

README = """\
Migrations of this app's SQL entities (Alembic). Usual commands:

    starmodel db makemigrations -m "what changed"   # autogenerate a revision from the entities
    starmodel db migrate                            # apply them
    starmodel db rollback                           # undo the last one
    starmodel db current / starmodel db history

Revisions are in versions/ and are meant to be committed and reviewed.
"""


def read_app_target(folder: Path) -> str | None:
    """The app recorded in ``folder/alembic.ini`` by ``starmodel db init``, if any."""
    ini = folder / INI_NAME
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini)
    except configparser.Error:
        return None
    value = parser.get("alembic", APP_OPTION, fallback="").strip()
    return value or None


# --------------------------------------------------------------------------- status and commands


@dataclass
class MigrationStatus:
    """Where the database stands against the migrations folder."""

    initialised: bool
    revisions: list[Script]  # oldest first
    current: tuple[str, ...]  # revisions recorded in the database
    applied: set[str]
    tables: set[str]  # tables that exist in the database

    @property
    def pending(self) -> list[Script]:
        return [s for s in self.revisions if s.revision not in self.applied]

    @property
    def heads(self) -> set[str]:
        return {s.revision for s in self.revisions if s.is_head}

    def summary(self) -> str:
        """``up to date`` / ``2 pending`` / ``not initialised`` / ``no migrations yet``."""
        if not self.initialised:
            return "not initialised"
        if not self.revisions:
            return "no migrations yet"
        pending = len(self.pending)
        return f"{pending} pending" if pending else "up to date"


class Migrations:
    """A migrations folder and the database (and entities) it migrates."""

    def __init__(self, folder: Path | str, database: SqlDatabase, entities: Iterable[type[Entity]]) -> None:
        self.folder = Path(folder)
        self.url = normalize_url(database.url)
        self.database = database
        self.entities = [e for e in entities if e.options().table]
        self._target: MigrationTarget | None = None

    @property
    def target(self) -> MigrationTarget:
        if self._target is None:
            self._target = MigrationTarget.for_entities(self.database, self.entities)
        return self._target

    @property
    def initialised(self) -> bool:
        return (self.folder / "env.py").is_file()

    def table_names(self) -> list[str]:
        return [t.name for t in self.database.tables_for(self.entities)]

    # -- the folder

    def write_folder(self, app_target: str) -> list[str]:
        """Create the folder (``alembic.ini``, ``env.py``, ``script.py.mako``, ``versions/``)."""
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise MigrationError(
                f"{self.folder} already exists; remove it first or choose another folder "
                "(STARMODEL_MIGRATIONS_DIR)"
            )
        (self.folder / "versions").mkdir(parents=True, exist_ok=True)
        files = {
            INI_NAME: INI.format(folder=self.folder.as_posix(), app=app_target),
            "env.py": ENV_PY,
            "script.py.mako": SCRIPT_MAKO,
            "README": README,
        }
        for name, content in files.items():
            (self.folder / name).write_text(content)
        (self.folder / "versions" / ".gitkeep").write_text("")
        return [*files, "versions/"]

    def config(self) -> Config:
        ini = self.folder / INI_NAME
        config = Config(str(ini) if ini.is_file() else None, cmd_opts=Namespace(quiet=True))
        config.set_main_option("script_location", str(self.folder).replace("%", "%%"))
        config.attributes[TARGET_ATTRIBUTE] = self.target
        return config

    def script(self) -> ScriptDirectory:
        self._require_folder()
        try:
            return ScriptDirectory.from_config(self.config())
        except CommandError as exc:
            raise MigrationError(f"{self.folder}: {first_line(exc)}") from None

    def revisions(self) -> list[Script]:
        """Every revision, oldest first."""
        try:
            return list(reversed(list(self.script().walk_revisions())))
        except (CommandError, RevisionError) as exc:
            raise MigrationError(f"{self.folder}/versions: {first_line(exc)}") from None

    def _require_folder(self) -> None:
        if not self.initialised:
            raise MigrationError(f"no migrations folder at {self.folder}/ yet: run `starmodel db init`")

    # -- the database

    async def _connect(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        engine = _engine(self.url)
        try:
            try:
                connection: AsyncConnection = await engine.connect()
            except (OSError, SQLAlchemyError) as exc:
                raise StoreUnavailable(
                    f"cannot connect to the database {display_url(self.url)}: {first_line(exc)}"
                ) from None
            try:
                result = await connection.run_sync(work)
                if write:
                    await connection.commit()
                return result
            except (OSError, SQLAlchemyError) as exc:
                raise StoreUnavailable(f"the database failed: {first_line(exc)}") from None
            finally:
                await connection.close()
        finally:
            await engine.dispose()

    def ping(self) -> None:
        """Fail with one line unless the database answers."""
        run_async(self._connect(lambda conn: conn.execute(text("select 1"))))

    def status(self) -> MigrationStatus:
        """Tables present, revisions applied and pending (connects to the database)."""
        revisions = self.revisions() if self.initialised else []

        def read(conn: Connection) -> tuple[tuple[str, ...], set[str]]:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return tuple(current.get_current_heads()), set(inspect(conn).get_table_names())

        current, tables = run_async(self._connect(read))
        applied: set[str] = set()
        if current and self.initialised:
            script = self.script()
            try:
                applied = {s.revision for s in script.iterate_revisions(current, "base")}
            except (CommandError, RevisionError):
                raise MigrationError(
                    f"the database is at revision {', '.join(current)}, which is not in "
                    f"{self.folder}/versions (`starmodel db reset --yes` starts it over)"
                ) from None
        return MigrationStatus(self.initialised, revisions, current, applied, tables)

    def make(self, message: str) -> tuple[Script | None, list[str]]:
        """Autogenerate a revision from the entities; ``(None, [])`` when nothing changed."""
        self.target.skip_empty = True
        self.target.changes = []
        result = self._command(lambda config: command.revision(config, message=message, autogenerate=True))
        script = result if isinstance(result, Script) else None
        return script, list(self.target.changes) if script else []

    def upgrade(self, revision: str = "heads") -> list[Step]:
        return self._steps(lambda config: command.upgrade(config, revision))

    def downgrade(self, revision: str) -> list[Step]:
        return self._steps(lambda config: command.downgrade(config, revision))

    def _steps(self, run: Callable[[Config], Any]) -> list[Step]:
        self.target.steps = []
        self._command(run)
        return list(self.target.steps)

    def _command(self, run: Callable[[Config], T]) -> T:
        self._require_folder()
        try:
            return run(self.config())
        except CommandError as exc:
            raise MigrationError(first_line(exc)) from None
        except StarModelError:
            raise
        except (OSError, SQLAlchemyError) as exc:
            raise MigrationError(f"the migration failed: {first_line(exc)}") from None

    def adopt(self, status: MigrationStatus) -> Step | None:
        """Tables created at start without migrations, when no migration is recorded yet:
        mark the first migration (which creates exactly those tables) as applied."""
        names = self.table_names()
        existing = [name for name in names if name in status.tables]
        if status.current or not existing:
            return None
        first = status.revisions[0] if len(status.revisions) == 1 else None
        tables = {t.name: {c.name for c in t.columns} for t in self.database.tables_for(self.entities)}

        def columns(conn: Connection) -> dict[str, set[str]]:
            found = inspect(conn)
            return {name: {c["name"] for c in found.get_columns(name)} for name in existing}

        matching = first is not None and set(existing) == set(names)
        if first is not None and matching and run_async(self._connect(columns)) == tables:
            self._command(lambda config: command.stamp(config, first.revision))
            return Step(first.revision, str(first.doc), True)
        raise MigrationError(
            f"table {', '.join(existing)} already exists but the database has no migration "
            "recorded (created at start without migrations?); `starmodel db reset --yes` "
            "recreates the tables through the migrations (their rows are lost)"
        )

    def drop_tables(self) -> list[str]:
        """Drop the app's tables and Alembic's version table (those that exist)."""
        tables = self.database.tables_for(self.entities)

        def drop(conn: Connection) -> list[str]:
            existing = set(inspect(conn).get_table_names())
            present = [t for t in tables if t.name in existing]
            if present:
                present[0].metadata.drop_all(conn, tables=present)
            names = [t.name for t in present]
            if VERSION_TABLE in existing:
                conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
                names.append(VERSION_TABLE)
            return names

        return run_async(self._connect(drop, write=True))

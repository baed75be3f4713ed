"""One migrations folder and one database: write the folder, status, make a revision,
upgrade, downgrade, adopt tables created without migrations, drop the app's tables."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from starmodel.adapters.driven.migrations.engine import (
    VERSION_TABLE,
    MigrationError,
    display_url,
    first_line,
    migration_engine,
    run_async,
)
from starmodel.adapters.driven.migrations.env import TARGET_ATTRIBUTE, AppliedMigration, MigrationTarget
from starmodel.adapters.driven.migrations.folder import INI_NAME, write_folder
from starmodel.adapters.driven.stores.sql import SqlDatabase, normalize_url
from starmodel.core.entity import Entity
from starmodel.core.errors import StarModelError, StoreUnavailable

__all__ = ["MigrationStatus", "Migrations"]

T = TypeVar("T")


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
        return write_folder(self.folder, app_target)

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
        engine = migration_engine(self.url)
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

    def upgrade(self, revision: str = "heads") -> list[AppliedMigration]:
        return self._applying(lambda config: command.upgrade(config, revision))

    def downgrade(self, revision: str) -> list[AppliedMigration]:
        return self._applying(lambda config: command.downgrade(config, revision))

    def _applying(self, run: Callable[[Config], Any]) -> list[AppliedMigration]:
        self.target.applied = []
        self._command(run)
        return list(self.target.applied)

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

    def adopt(self, status: MigrationStatus) -> AppliedMigration | None:
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
            return AppliedMigration(first.revision, str(first.doc), True)
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

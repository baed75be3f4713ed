"""``starmodel db ...`` and ``starmodel migrate``: Alembic migrations of the app's SQL entities.

The migrations folder is the app's ``migrations_dir`` (``migrations`` by default,
``STARMODEL_MIGRATIONS_DIR``). ``db init`` records the app in ``<folder>/alembic.ini``
(``starmodel_app = ...``), so later commands and plain ``alembic -c <folder>/alembic.ini ...``
find it. Which app a command works on: ``--app``, else the recorded one, else
``STARMODEL_APP`` / ``app.py`` / ``main.py``.

``migration_target`` stays importable from here for the ``env.py`` files written by earlier
versions; new ones import ``starmodel.migrations``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from starmodel.adapters.driven.migrations import (
    AppliedMigration,
    Migrations,
    MigrationStatus,
    display_url,
    first_line,
    read_app_target,
    run_async,
)
from starmodel.app.settings import Settings
from starmodel.bootstrap import StarModel
from starmodel.cli.discovery import FoundApp
from starmodel.core.errors import StarModelError
from starmodel.migrations import find_starmodel, migration_target

__all__ = ["db_group", "load_project", "migrate_command", "migration_target"]

APP_HELP = "The app (default: the one `db init` recorded, else STARMODEL_APP / app.py)."


@dataclass
class Project:
    """The app a migrations command works on, its folder and its database."""

    found: FoundApp
    starmodel: StarModel
    migrations: Migrations
    app_target: str  # what `db init` records

    @property
    def folder(self) -> Path:
        return self.migrations.folder


@contextmanager
def _one_line() -> Iterator[None]:
    """StarModel errors (bad DATABASE_URL, unreachable database, ...) become one CLI line."""
    try:
        yield
    except StarModelError as exc:
        raise click.ClickException(str(exc)) from None


def _recorded(app: str | None) -> str | None:
    """The app named on the command line, else the one recorded in the default folder."""
    if app:
        return app
    try:
        folder = Settings.from_env().migrations_dir
    except StarModelError:
        return None
    return read_app_target(Path(folder))


def _record_target(found: FoundApp, given: str | None) -> str:
    """What to write into alembic.ini: what the user named, else ``module:attr`` found."""
    if given:
        return given
    module, _, attr = found.import_string.partition(":")
    return f"{module}:{attr.removesuffix('.app')}" if attr.endswith(".app") else found.import_string


def load_project(app: str | None) -> Project:
    """Import the app and set up its migrations (nothing is connected yet)."""
    target = _recorded(app)
    with _one_line():
        found, sm = find_starmodel(target)
        migrations = Migrations(sm.settings.migrations_dir, sm.services.database, sm.sql_entities())
    return Project(found, sm, migrations, _record_target(found, target or os.environ.get("STARMODEL_APP")))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _echo_applied(applied: list[AppliedMigration]) -> None:
    for migration in applied:
        verb = "applied" if migration.upgrade else "rolled back"
        click.echo(f"{verb} {migration.revision}  {migration.message}")


def _status(project: Project) -> MigrationStatus:
    with _one_line():
        return project.migrations.status()


def _require_init(project: Project) -> None:
    if not project.migrations.initialised:
        raise click.ClickException(
            f"no migrations folder at {project.folder}/ yet: run `starmodel db init`"
        )


def _warn_unmigrated(project: Project) -> None:
    status = _status(project)
    missing = [name for name in project.migrations.table_names() if name not in status.tables]
    if missing:
        click.echo(
            f"warning: no migration creates table {', '.join(missing)} yet: "
            "run `starmodel db makemigrations`",
            err=True,
        )


def _init(project: Project) -> None:
    with _one_line():
        files = project.migrations.write_folder(project.app_target)
    click.echo(f"created {project.folder}/ ({', '.join(files)}) for app {project.app_target}")


def _apply(project: Project, status: MigrationStatus) -> None:
    """Adopt tables created at start without migrations, then upgrade to head."""
    with _one_line():
        adopted = project.migrations.adopt(status)
        if adopted is not None:
            click.echo(
                f"marked {adopted.revision} ({adopted.message}) as applied: its tables already "
                "existed (created at start without migrations)"
            )
        _echo_applied(project.migrations.upgrade("heads"))


def _upgrade(project: Project) -> None:
    status = _status(project)
    if not status.revisions:
        raise click.ClickException("no migrations yet: run `starmodel db makemigrations -m MESSAGE`")
    if not status.pending:
        click.echo(f"the database is up to date ({', '.join(status.current)})")
        return
    _apply(project, status)


def _make(project: Project, message: str | None, *, check_current: bool = True) -> bool:
    if check_current:
        status = _status(project)
        if status.pending:
            raise click.ClickException(
                f"the database is {_plural(len(status.pending), 'migration')} behind: "
                "run `starmodel db migrate` before making a new one"
            )
    with _one_line():
        script, changes = project.migrations.make(message or "")
    if script is None:
        entities = "" if project.migrations.entities else " (the app has no SQL entities)"
        click.echo(f"no changes in the SQL entities{entities}; no migration created")
        return False
    click.echo(f"created {_relative(Path(script.path))}")
    for change in changes:
        click.echo(f"  {change}")
    return True


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@click.group("db")
def db_group() -> None:
    """Migrations (Alembic) of the app's SQL entities, and a SQL shell."""


@db_group.command("init")
@click.option("--app", "app", default=None, help=APP_HELP)
def init_command(app: str | None) -> None:
    """Create the migrations folder (settings.migrations_dir) for APP."""
    project = load_project(app)
    if project.migrations.initialised:
        raise click.ClickException(
            f"{project.folder}/ already exists (migrations are set up); "
            "`starmodel db makemigrations` makes the next one"
        )
    _init(project)
    click.echo("next: starmodel db makemigrations -m 'create tables' && starmodel db migrate")


@db_group.command("makemigrations")
@click.option("-m", "--message", default=None, help="What the migration does (default: derived).")
@click.option("--app", "app", default=None, help=APP_HELP)
def makemigrations_command(message: str | None, app: str | None) -> None:
    """Autogenerate a migration from the changes of the app's SQL entities."""
    project = load_project(app)
    _require_init(project)
    _make(project, message)


@db_group.command("migrate")
@click.option("--app", "app", default=None, help=APP_HELP)
def db_migrate_command(app: str | None) -> None:
    """Apply the pending migrations (upgrade to head)."""
    project = load_project(app)
    _require_init(project)
    _upgrade(project)
    _warn_unmigrated(project)


@db_group.command("rollback")
@click.argument("steps", type=click.IntRange(min=1), default=1, required=False)
@click.option("--app", "app", default=None, help=APP_HELP)
def rollback_command(steps: int, app: str | None) -> None:
    """Undo the last STEPS applied migrations (default 1)."""
    project = load_project(app)
    _require_init(project)
    status = _status(project)
    applied = len(status.applied)
    if applied == 0:
        raise click.ClickException("nothing to roll back: no migration is applied")
    if steps > applied:
        raise click.ClickException(
            f"cannot roll back {_plural(steps, 'migration')}: only {applied} applied"
        )
    with _one_line():
        _echo_applied(project.migrations.downgrade(f"-{steps}"))


@db_group.command("history")
@click.option("--app", "app", default=None, help=APP_HELP)
def history_command(app: str | None) -> None:
    """List the migrations, oldest first, and which are applied."""
    project = load_project(app)
    _require_init(project)
    status = _status(project)
    if not status.revisions:
        click.echo("no migrations yet: run `starmodel db makemigrations -m MESSAGE`")
        return
    current = set(status.current)
    for script in status.revisions:
        state = "applied" if script.revision in status.applied else "pending"
        marks = [m for m, on in (("head", script.is_head), ("current", script.revision in current)) if on]
        note = f"  ({', '.join(marks)})" if marks else ""
        click.echo(f"{script.revision}  {state:<7}  {script.doc}{note}")


@db_group.command("current")
@click.option("--app", "app", default=None, help=APP_HELP)
def current_command(app: str | None) -> None:
    """Show the database's migration and what is pending."""
    project = load_project(app)
    _require_init(project)
    status = _status(project)
    by_id = {s.revision: s for s in status.revisions}
    if status.current:
        for revision in status.current:
            script = by_id.get(revision)
            head = " (head)" if script is not None and script.is_head else ""
            click.echo(f"current: {revision}{head}  {script.doc if script else ''}".rstrip())
    else:
        click.echo("current: none (no migration applied)")
    pending = len(status.pending)
    if not status.revisions:
        click.echo("no migrations yet: run `starmodel db makemigrations -m MESSAGE`")
    elif pending:
        click.echo(f"{_plural(pending, 'migration')} pending: run `starmodel db migrate`")
    else:
        click.echo("up to date")


@db_group.command("reset")
@click.option("--yes", is_flag=True, help="Really drop the tables and their data.")
@click.option("--app", "app", default=None, help=APP_HELP)
def reset_command(yes: bool, app: str | None) -> None:
    """Drop the app's tables (and Alembic's version table), then migrate to head."""
    if not yes:
        raise click.ClickException(
            "db reset drops every table of the app's entities with their data; "
            "run it again with --yes"
        )
    project = load_project(app)
    _require_init(project)
    with _one_line():
        project.migrations.ping()
        dropped = project.migrations.drop_tables()
    click.echo(f"dropped {', '.join(dropped)}" if dropped else "no tables to drop")
    if not project.migrations.revisions():
        click.echo("no migrations yet: run `starmodel db makemigrations -m MESSAGE`")
        return
    with _one_line():
        _echo_applied(project.migrations.upgrade("heads"))


@db_group.command("shell")
@click.option("--python", "python_shell", is_flag=True,
              help="Use the built-in SQL prompt even when psql / sqlite3 is installed.")
@click.option("--app", "app", default=None, help=APP_HELP)
def shell_command(python_shell: bool, app: str | None) -> None:
    """An interactive SQL shell on the app's database (psql, sqlite3, or a built-in prompt)."""
    project = load_project(app)
    url = project.migrations.url
    parsed = make_url(url)
    if not python_shell:
        program = "psql" if parsed.get_backend_name() == "postgresql" else "sqlite3"
        path = shutil.which(program)
        if path is not None:
            args, env = _native_shell(path, parsed)
            code = subprocess.call(args, env=env)
            if code:
                raise SystemExit(code)
            return
    with _one_line():
        project.migrations.ping()
    run_async(_python_shell(url))


def _native_shell(program: str, parsed: Any) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if parsed.get_backend_name() == "postgresql":
        args = [program]
        if parsed.host:
            args += ["-h", str(parsed.host)]
        if parsed.port:
            args += ["-p", str(parsed.port)]
        if parsed.username:
            args += ["-U", str(parsed.username)]
        if parsed.password:
            env["PGPASSWORD"] = str(parsed.password)
        if parsed.database:
            args.append(str(parsed.database))
        return args, env
    database = parsed.database or ":memory:"
    return [program, database], env


def split_statements(source: str) -> tuple[list[str], str]:
    """Complete ``;``-terminated statements of ``source`` (quotes respected), and the rest."""
    statements: list[str] = []
    quote: str | None = None
    start = 0
    for index, char in enumerate(source):
        if quote:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == ";":
            statement = source[start:index].strip()
            if statement:
                statements.append(statement)
            start = index + 1
    return statements, source[start:]


async def _python_shell(url: str) -> None:
    """Read SQL from stdin, run each statement in its own transaction, print the rows."""
    interactive = sys.stdin.isatty()
    engine = create_async_engine(url)
    if interactive:
        click.echo(f"SQL shell on {display_url(url)}; end statements with ';', quit with \\q or Ctrl-D")
    buffer = ""
    try:
        while True:
            if interactive:
                click.echo("sql> " if not buffer.strip() else "...> ", nl=False)
            line = sys.stdin.readline()
            if not line:
                statements, rest = split_statements(buffer)
                if rest.strip():
                    statements.append(rest.strip())
                for statement in statements:
                    await _execute(engine, statement)
                break
            if not buffer.strip() and line.strip() in ("\\q", "quit", "exit", ".quit"):
                break
            buffer += line
            statements, buffer = split_statements(buffer)
            for statement in statements:
                await _execute(engine, statement)
    finally:
        await engine.dispose()
    if interactive:
        click.echo()


async def _execute(engine: Any, statement: str) -> None:
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            if result.returns_rows:
                columns = list(result.keys())
                rows = [tuple(row) for row in result.fetchall()]
                _print_rows(columns, rows)
            else:
                click.echo(f"OK ({_plural(max(result.rowcount, 0), 'row')} affected)")
    except (OSError, SQLAlchemyError) as exc:
        click.echo(f"error: {first_line(exc)}")


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [[str(c) for c in columns]] + [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for index, row in enumerate(cells):
        click.echo(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("-+-".join("-" * w for w in widths))
    click.echo(f"({_plural(len(rows), 'row')})")


@click.command("migrate")
@click.option("-m", "--message", default=None, help="Message of the new migration (default: derived).")
@click.option("--app", "app", default=None, help=APP_HELP)
def migrate_command(message: str | None, app: str | None) -> None:
    """Make a migration of what changed and apply it (sets up the folder on first use)."""
    project = load_project(app)
    with _one_line():
        project.migrations.ping()  # an unreachable database leaves no folder behind
    if not project.migrations.initialised:
        _init(project)
    status = _status(project)
    if status.pending:
        _apply(project, status)
    if _make(project, message, check_current=False):
        _apply(project, _status(project))
    elif status.revisions and not status.pending:
        click.echo("the database is up to date")

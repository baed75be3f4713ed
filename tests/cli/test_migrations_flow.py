"""Migrations end to end, on SQLite and on PostgreSQL (a fresh database per test): init ->
makemigrations -> migrate -> change an entity -> makemigrations -> migrate -> rollback, with
the real schema checked after each step; `starmodel migrate` in one step; `db reset`;
`db shell` (psql / sqlite3 and the built-in prompt) fed on stdin; plain `alembic`.

The CLI runs in this process (click's CliRunner; every test imports its app under a module
name of its own, re-imported when app.py is rewritten) or, where noted, as a real
subprocess (`python -m starmodel.cli.main`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from starmodel.adapters.driven.stores.sql import normalize_url
from starmodel.cli.main import cli

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_USERS = ("postgres", "root")

APP = '''\
from sqlmodel import Field

from starmodel import Entity, StarModel


class Todo(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=100)
    done: bool = False
{extra}

sm = StarModel()
app = sm.app
'''
PRIORITY = "    priority: int = 3\n    note: str | None = None\n"


# --------------------------------------------------------------------------- databases


def blocking(coroutine: Any) -> Any:
    """Run a coroutine in a thread with its own loop (whatever loop pytest runs)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(60)


async def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            return [tuple(row) for row in result.fetchall()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def _schema(url: str) -> dict[str, dict[str, dict[str, Any]]]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            def read(sync: Any) -> dict[str, dict[str, dict[str, Any]]]:
                found = inspect(sync)
                return {
                    table: {c["name"]: c for c in found.get_columns(table)}
                    for table in found.get_table_names()
                }
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    return blocking(_sql(url, statement))


def schema(url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{table: {column: reflected column}}`` of the database right now."""
    return blocking(_schema(url))


async def _admin(user: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database="test", timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close(timeout=3)


def _pg_user() -> str | None:
    for user in PG_USERS:
        try:
            blocking(_admin(user, "select 1"))
            return user
        except Exception:
            continue
    return None


@pytest.fixture(scope="module")
def pg_user() -> str:
    user = _pg_user()
    if user is None:
        pytest.skip(f"no PostgreSQL server at {PG_HOST}:{PG_PORT} (users {', '.join(PG_USERS)})")
    return user


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    user = request.getfixturevalue("pg_user")
    name = f"sm_migrations_{secrets.token_hex(6)}"
    blocking(_admin(user, f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        blocking(_admin(user, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --------------------------------------------------------------------------- the project


class Project:
    """A project folder with an app module of its own name, and the CLI run in it."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.module = f"smapp_{secrets.token_hex(4)}"
        self.runner = CliRunner()

    def write(self, extra: str = "") -> None:
        (self.path / f"{self.module}.py").write_text(APP.format(extra=extra))
        sys.modules.pop(self.module, None)
        shutil.rmtree(self.path / "__pycache__", ignore_errors=True)

    def cli(self, *args: str, input: str | None = None, code: int = 0) -> str:
        sys.modules.pop(self.module, None)  # the app is imported afresh, like a new process
        result: Result = self.runner.invoke(cli, list(args), input=input)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """The real command line, in a process of its own."""
        return subprocess.run(
            [sys.executable, "-m", "starmodel.cli.main", *args],
            cwd=self.path, env=env_for(self.url), input=input, capture_output=True, text=True,
            timeout=120, check=False,
        )

    def versions(self) -> list[Path]:
        return sorted((self.path / "migrations" / "versions").glob("*.py"))

    def columns(self, table: str = "todo") -> set[str]:
        return set(schema(self.url).get(table, {}))


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARMODEL_")}
    return env | {"DATABASE_URL": url, "SECRET_KEY": "migrations-test"}


@pytest.fixture
def project(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for name in ("STARMODEL_APP", "STARMODEL_MIGRATIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "migrations-test")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    made = Project(tmp_path, database_url)
    made.write()
    try:
        yield made
    finally:
        sys.modules.pop(made.module, None)


BASE = {"id", "title", "done", "sm_version"}


# --------------------------------------------------------------------------- tests


def test_init_make_migrate_change_rollback(project: Project) -> None:
    out = project.cli("db", "init", "--app", project.module)
    files = "alembic.ini, env.py, script.py.mako, README, versions/"
    assert f"created migrations/ ({files}) for app {project.module}" in out
    ini = (project.path / "migrations" / "alembic.ini").read_text()
    assert f"starmodel_app = {project.module}" in ini

    # later commands find the app recorded by init (no --app from here on)
    out = project.cli("db", "makemigrations", "-m", "create todo")
    assert "create table todo" in out
    [first] = project.versions()
    source = first.read_text()
    assert "sa.Column('sm_version', sa.Integer(), server_default='1', nullable=False)" in source
    assert "sa.String(length=100)" in source and "sqlmodel" not in source
    assert "todo" not in schema(project.url)  # nothing applied yet

    out = project.cli("db", "migrate")
    assert "applied " in out and "create todo" in out
    assert project.columns() == BASE
    assert project.columns("alembic_version") == {"version_num"}
    todo = schema(project.url)["todo"]
    assert todo["sm_version"]["nullable"] is False and todo["title"]["nullable"] is False

    assert "no changes in the SQL entities; no migration created" in project.cli("db", "makemigrations")
    assert len(project.versions()) == 1
    sql(project.url, "INSERT INTO todo (title, done) VALUES ('existing', false)")

    project.write(PRIORITY)
    out = project.cli("db", "makemigrations", "-m", "add priority")
    assert "add column todo.priority" in out and "add column todo.note" in out
    assert len(project.versions()) == 2
    second = next(p for p in project.versions() if "add_priority" in p.name).read_text()
    assert "batch_alter_table('todo'" in second  # SQLite can ALTER it
    assert "server_default='3'" in second  # existing rows get the field's default

    out = project.cli("db", "migrate")
    assert "add priority" in out
    assert project.columns() == BASE | {"priority", "note"}
    rows = sql(project.url, "SELECT title, priority, note, sm_version FROM todo")
    assert rows == [("existing", 3, None, 1)]
    assert "the database is up to date" in project.cli("db", "migrate")

    revisions = [line.split()[0] for line in project.cli("db", "history").splitlines()]
    assert len(revisions) == 2
    current = project.cli("db", "current")
    assert current.splitlines() == [f"current: {revisions[1]} (head)  add priority", "up to date"]

    out = project.cli("db", "rollback")
    assert f"rolled back {revisions[1]}  add priority" in out
    assert project.columns() == BASE
    assert sql(project.url, "SELECT title FROM todo") == [("existing",)]
    history = project.cli("db", "history").splitlines()
    assert history[0].startswith(f"{revisions[0]}  applied  create todo  (current)")
    assert history[1].startswith(f"{revisions[1]}  pending  add priority  (head)")
    current = project.cli("db", "current")
    assert "1 migration pending: run `starmodel db migrate`" in current

    out = project.cli("db", "makemigrations", code=1)
    assert "1 migration behind: run `starmodel db migrate`" in out
    out = project.cli("db", "rollback", "5", code=1)
    assert "cannot roll back 5 migrations: only 1 applied" in out

    project.cli("db", "migrate")
    assert project.columns() == BASE | {"priority", "note"}
    out = project.cli("db", "rollback", "2")
    assert out.count("rolled back") == 2
    assert set(schema(project.url)) == {"alembic_version"}
    assert "current: none (no migration applied)" in project.cli("db", "current")
    assert "nothing to roll back" in project.cli("db", "rollback", code=1)


def test_one_step_migrate_in_a_subprocess(project: Project) -> None:
    first = project.run("migrate", "--app", project.module)
    assert first.returncode == 0, first.stderr
    assert "created migrations/" in first.stdout and "create table todo" in first.stdout
    assert "applied " in first.stdout
    assert project.columns() == BASE

    project.write(PRIORITY)
    second = project.run("migrate", "-m", "priority and note")
    assert second.returncode == 0, second.stderr
    assert "add column todo.priority" in second.stdout and "applied" in second.stdout
    assert project.columns() == BASE | {"priority", "note"}
    assert any("priority_and_note" in p.name for p in project.versions())

    third = project.run("migrate")
    assert third.returncode == 0, third.stderr
    assert "no changes" in third.stdout and "the database is up to date" in third.stdout
    assert len(project.versions()) == 2

    # plain Alembic finds the recorded app and the app's database
    alembic = shutil.which("alembic") or ""
    plain = subprocess.run(
        [alembic, "-c", "migrations/alembic.ini", "downgrade", "-1"], cwd=project.path,
        env=env_for(project.url), capture_output=True, text=True, timeout=120, check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert "Running downgrade" in plain.stderr
    assert project.columns() == BASE
    assert "1 migration pending" in project.cli("db", "current")
    assert "cannot roll back 3 migrations: only 1 applied" in project.cli("db", "rollback", "3", code=1)


def test_reset_drops_and_migrates_again(project: Project) -> None:
    project.cli("migrate", "--app", project.module)
    sql(project.url, "INSERT INTO todo (title, done) VALUES ('gone soon', true)")
    assert "--yes" in project.cli("db", "reset", code=1)
    assert sql(project.url, "SELECT count(*) FROM todo") == [(1,)]

    out = project.cli("db", "reset", "--yes")
    assert out.splitlines()[0] == "dropped todo, alembic_version"
    assert "applied" in out
    assert sql(project.url, "SELECT count(*) FROM todo") == [(0,)]
    assert project.columns() == BASE
    assert "up to date" in project.cli("db", "current")


def test_tables_created_at_start_are_adopted(project: Project) -> None:
    """An app that ran before migrations existed has its tables already: the first migration
    creates them all and is marked applied instead of failing on `table exists`."""
    project.cli("db", "init", "--app", project.module)
    sql(project.url, "CREATE TABLE todo (id INTEGER PRIMARY KEY, title VARCHAR(100) NOT NULL, "
                     "done BOOLEAN NOT NULL, sm_version INTEGER NOT NULL DEFAULT 1)")
    out = project.cli("db", "makemigrations", "-m", "initial")
    assert "create table todo" in out
    out = project.cli("db", "migrate")
    assert "as applied: its tables already existed" in out
    assert "up to date" in project.cli("db", "current")

    # a table that differs from the first migration is not silently adopted
    project.cli("db", "reset", "--yes")
    project.cli("db", "rollback")  # back to no migration: the table is dropped
    sql(project.url, "CREATE TABLE todo (id INTEGER PRIMARY KEY, other INTEGER)")
    out = project.cli("db", "migrate", code=1)
    assert "already exists but the database has no migration recorded" in out


def test_shell_native_and_builtin(project: Project) -> None:
    project.cli("migrate", "--app", project.module)
    sql(project.url, "INSERT INTO todo (title, done) VALUES ('from the shell', false)")

    program = "psql" if project.url.startswith("postgresql") else "sqlite3"
    if shutil.which(program):
        native = project.run("db", "shell", input="SELECT title FROM todo;\n")
        assert native.returncode == 0, native.stderr
        assert "from the shell" in native.stdout

    builtin = project.run("db", "shell", "--python", input="SELECT title, done FROM todo;\n")
    assert builtin.returncode == 0, builtin.stderr
    assert "from the shell" in builtin.stdout and "(1 row)" in builtin.stdout

    out = project.cli(
        "db", "shell", "--python",
        input="UPDATE todo SET title = 'a;b'\n WHERE id = 1;\nSELECT nope FROM todo;\nSELECT title FROM todo",
    )
    assert "OK (1 row affected)" in out
    assert "error: " in out  # a bad statement is reported, the shell goes on
    assert "a;b" in out and out.rstrip().endswith("(1 row)")


USERS_ONLY_APP = '''\
from starmodel import StarModel
from starmodel.contrib.auth import User

sm = StarModel()
sm.include(User)  # an app from before sign-ins were kept on the server
app = sm.app
'''
AUTH_APP = '''\
from starmodel import StarModel
from starmodel.contrib.auth import Auth

sm = StarModel()
auth = Auth(sm)
app = sm.app
'''
SIGN_IN_COLUMNS = {"id", "user_id", "created_at", "expires_at", "password_check", "sm_version"}


def test_the_sign_ins_table_of_the_auth_plugin_is_migrated(project: Project) -> None:
    """An app whose users were migrated before sign-ins were kept gets the ``sign_ins`` table
    from the next `starmodel migrate`; a new app gets both tables from its first."""
    (project.path / f"{project.module}.py").write_text(USERS_ONLY_APP)
    first = project.cli("migrate", "--app", project.module)
    assert "create table users" in first and "sign_ins" not in first
    assert "sign_ins" not in schema(project.url)

    (project.path / f"{project.module}.py").write_text(AUTH_APP)
    second = project.cli("migrate", "-m", "sign-ins")
    assert "create table sign_ins" in second and "applied" in second
    assert project.columns("sign_ins") == SIGN_IN_COLUMNS
    assert "no changes" in project.cli("migrate")

    project.cli("db", "reset", "--yes")
    assert project.columns("users") and project.columns("sign_ins") == SIGN_IN_COLUMNS

"""`starmodel db ...` on SQLite, in this process: every user mistake is one line (exit 1),
the status texts, the folder setting, `db shell`'s built-in prompt, what
`starmodel entities inspect` says about a SQL entity's table and migrations, and the imports
of the `env.py` written now and of the one earlier versions wrote."""

from __future__ import annotations

import ast
import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.util import CommandError
from click.testing import CliRunner

from starmodel.cli.db import split_statements
from starmodel.cli.main import cli
from starmodel.migrations import migration_target

APP = '''\
from sqlmodel import Field

from starmodel import Entity, StarModel


class Note(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(max_length=200)
{extra}

class Draft(Entity):
    body: str = ""


sm = StarModel()
app = sm.app
'''
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"
EARLIER_ENV_PY = '''\
"""Alembic environment of a StarModel app (written by `starmodel db init`)."""

from alembic import context

from starmodel.adapters.driven.migrations import run_env
from starmodel.cli.db import migration_target

run_env(context, migration_target(context.config))
'''


class Project:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.module = f"dbapp_{secrets.token_hex(4)}"
        self.runner = CliRunner()

    def write(self, extra: str = "") -> None:
        (self.path / f"{self.module}.py").write_text(APP.format(extra=extra))
        shutil.rmtree(self.path / "__pycache__", ignore_errors=True)

    def cli(self, *args: str, code: int = 0, input: str | None = None) -> str:
        sys.modules.pop(self.module, None)
        result = self.runner.invoke(cli, list(args), input=input)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == code, result.output
        return result.output

    def error(self, *args: str) -> str:
        """The one line a mistake gives (without click's ``Error: ``)."""
        out = self.cli(*args, code=1).strip()
        assert len(out.splitlines()) == 1, out
        assert out.startswith("Error: ")
        return out.removeprefix("Error: ")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for name in ("STARMODEL_APP", "STARMODEL_MIGRATIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("SECRET_KEY", "db-test")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    made = Project(tmp_path)
    made.write()
    monkeypatch.setenv("STARMODEL_APP", made.module)
    try:
        yield made
    finally:
        sys.modules.pop(made.module, None)


def test_no_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STARMODEL_APP", raising=False)
    monkeypatch.delenv("STARMODEL_MIGRATIONS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    for args in (["db", "init"], ["migrate"], ["db", "current"], ["db", "shell"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert result.output.startswith("Error: no app found: pass APP")
        assert len(result.output.strip().splitlines()) == 1


def test_not_a_starmodel_app(project: Project) -> None:
    (project.path / "plain_asgi.py").write_text("from fasthtml.common import FastHTML\napp = FastHTML()\n")
    message = project.error("db", "init", "--app", "plain_asgi")
    assert message == "plain_asgi:app is not a StarModel app: migrations need `sm = StarModel(...)`"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "DATABASE_URL 'nonsense' is not a database URL"),
        ("mysql://me@localhost/db", "DATABASE_URL: 'mysql' databases are not supported"),
        (UNREACHABLE, "cannot connect to the database postgresql://nobody@127.0.0.1:1/nothing: "),
    ],
)
def test_bad_or_unreachable_database(project: Project, monkeypatch: pytest.MonkeyPatch,
                                     url: str, message: str) -> None:
    project.cli("db", "init")
    monkeypatch.setenv("DATABASE_URL", url)
    for args in (["db", "current"], ["db", "migrate"], ["db", "makemigrations"], ["migrate"],
                 ["db", "rollback"], ["db", "history"], ["db", "reset", "--yes"]):
        assert project.error(*args).startswith(message), args


def test_one_step_migrate_on_an_unreachable_database_writes_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    assert project.error("migrate").startswith("cannot connect to the database")
    assert not (project.path / "migrations").exists()


def test_commands_before_init_say_so(project: Project) -> None:
    for args in (["db", "makemigrations", "-m", "x"], ["db", "migrate"], ["db", "rollback"],
                 ["db", "history"], ["db", "current"], ["db", "reset", "--yes"]):
        assert project.error(*args) == "no migrations folder at migrations/ yet: run `starmodel db init`"
    assert not (project.path / "migrations").exists()


def test_init_writes_the_folder_once(project: Project) -> None:
    out = project.cli("db", "init")
    files = "alembic.ini, env.py, script.py.mako, README, versions/"
    assert out.splitlines()[0] == f"created migrations/ ({files}) for app {project.module}"
    folder = project.path / "migrations"
    assert {p.name for p in folder.iterdir()} == {
        "alembic.ini", "env.py", "script.py.mako", "README", "versions"
    }
    assert "run_env(context, migration_target(context.config))" in (folder / "env.py").read_text()
    assert project.error("db", "init").startswith("migrations/ already exists (migrations are set up)")

    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "notes.txt").write_text("someone else's")
    assert project.error("db", "init").startswith("migrations already exists; remove it first")
    assert project.error("migrate").startswith("migrations already exists; remove it first")


def test_empty_history_texts(project: Project) -> None:
    project.cli("db", "init")
    none_yet = "no migrations yet: run `starmodel db makemigrations -m MESSAGE`"
    assert project.error("db", "migrate") == none_yet
    assert project.cli("db", "history").strip() == none_yet
    assert project.cli("db", "current").splitlines() == ["current: none (no migration applied)", none_yet]
    assert project.error("db", "rollback") == "nothing to roll back: no migration is applied"


def test_reset_needs_yes_before_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not even an app here: the refusal comes first
    result = CliRunner().invoke(cli, ["db", "reset"])
    assert result.exit_code == 1
    assert "drops every table of the app's entities with their data; run it again with --yes" in result.output


def test_rollback_argument_must_be_positive(project: Project) -> None:
    assert "Invalid value for '[STEPS]'" in project.cli("db", "rollback", "0", code=2)


def test_message_is_derived_when_omitted(project: Project) -> None:
    project.cli("db", "init")
    out = project.cli("db", "makemigrations")
    assert "create table note" in out
    [version] = (project.path / "migrations" / "versions").glob("*.py")
    assert version.name.endswith("_create_table_note.py")
    assert version.read_text().startswith('"""create table note\n')


def test_migrations_dir_setting_and_recorded_app(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARMODEL_MIGRATIONS_DIR", "db/migrations")
    out = project.cli("db", "init", "--app", project.module)
    assert out.startswith("created db/migrations/")
    monkeypatch.delenv("STARMODEL_APP")  # the app recorded in db/migrations/alembic.ini is used
    project.cli("migrate")
    assert len(list((project.path / "db" / "migrations" / "versions").glob("*.py"))) == 1
    assert "up to date" in project.cli("db", "current")
    assert not (project.path / "migrations").exists()


def test_database_ahead_of_the_folder(project: Project) -> None:
    project.cli("migrate")
    for version in (project.path / "migrations" / "versions").glob("*.py"):
        version.unlink()
    message = project.error("db", "current")
    assert message.startswith("the database is at revision ")
    assert message.endswith("which is not in migrations/versions (`starmodel db reset --yes` starts it over)")
    out = project.cli("db", "reset", "--yes")
    assert out.splitlines() == [
        "dropped note, alembic_version",
        "no migrations yet: run `starmodel db makemigrations -m MESSAGE`",
    ]


def test_migrate_warns_about_tables_without_a_migration(project: Project) -> None:
    project.cli("migrate")
    project.write("\n\nclass Tag(Entity, table=True):\n    name: str = Field(primary_key=True)\n")
    out = project.cli("db", "migrate")
    assert "warning: no migration creates table tag yet: run `starmodel db makemigrations`" in out


def test_shell_builtin_prompt(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.cli("migrate")
    monkeypatch.setattr("starmodel.cli.db.shutil.which", lambda name: None)  # no sqlite3 here
    out = project.cli(
        "db", "shell",
        input="INSERT INTO note (text) VALUES ('one');\nINSERT INTO note (text) VALUES ('two');\n"
              "SELECT id, text, sm_version FROM note ORDER BY id;\n",
    )
    assert out.splitlines() == [
        "OK (1 row affected)",
        "OK (1 row affected)",
        "id | text | sm_version",
        "---+------+-----------",
        "1  | one  | 1",
        "2  | two  | 1",
        "(2 rows)",
    ]
    assert project.cli("db", "shell", input="\\q\nSELECT 1;\n") == ""  # \q leaves at once
    assert project.cli("db", "shell", input="") == ""  # EOF at once: a clean exit


def test_split_statements() -> None:
    assert split_statements("select 1; select ';' ;\nselect \"a;b\"; sel") == (
        ["select 1", "select ';'", 'select "a;b"'], " sel"
    )
    assert split_statements("") == ([], "")


def test_plain_alembic_without_an_app_fails_cleanly(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STARMODEL_APP")
    config = Config()
    config.set_main_option("starmodel_app", "no_such_module_here")
    with pytest.raises(CommandError, match="no app found: there is no module 'no_such_module_here'"):
        migration_target(config)


def test_entities_inspect_shows_the_table(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    out = project.cli("entities", "inspect", "Note")
    assert "  table: note (table missing; migrations: not initialised)" in out
    lines = out.splitlines()
    start = lines.index("  table: note (table missing; migrations: not initialised)")
    assert [line.split() for line in lines[start + 1:start + 4]] == [
        ["id", "INTEGER", "primary", "key"],
        ["text", "VARCHAR(200)", "not", "null"],
        ["sm_version", "INTEGER", "not", "null"],
    ]

    project.cli("migrate")
    assert "table: note (table exists; migrations: up to date)" in project.cli("entities", "inspect", "note")

    project.write("    done: bool = False\n")
    project.cli("db", "makemigrations", "-m", "done")
    info = json.loads(project.cli("entities", "inspect", "Note", "--json"))
    assert info["table"] == {
        "name": "note",
        "columns": [
            {"name": "id", "type": "INTEGER", "nullable": False, "primary_key": True},
            {"name": "text", "type": "VARCHAR(200)", "nullable": False, "primary_key": False},
            {"name": "done", "type": "BOOLEAN", "nullable": False, "primary_key": False},
            {"name": "sm_version", "type": "INTEGER", "nullable": False, "primary_key": False},
        ],
        "exists": True,
        "migrations": "1 pending",
        "pending": 1,
        "error": None,
    }
    assert json.loads(project.cli("entities", "inspect", "Draft", "--json"))["table"] is None
    assert "table:" not in project.cli("entities", "inspect", "Draft")

    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    out = project.cli("entities", "inspect", "Note")
    assert "  table: note (status unknown: cannot connect to the database " in out
    info = json.loads(project.cli("entities", "inspect", "Note", "--json"))["table"]
    assert info["exists"] is None and info["migrations"] == "unknown" and info["pending"] is None
    assert info["error"].startswith("cannot connect to the database")


def _imports(source: str) -> dict[str, set[str]]:
    """``{module: names imported from it}`` of a Python source (``import m`` gives no names)."""
    imported: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.setdefault("." * node.level + (node.module or ""), set()).update(
                alias.name for alias in node.names
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported.setdefault(alias.name, set())
    return imported


def test_written_env_py_imports_no_cli_and_no_adapter(project: Project) -> None:
    """The generated env.py keeps the adapters' rule (nothing from `starmodel.cli`): it imports
    Alembic and the one entry point `starmodel.migrations`, and every name it imports exists."""
    project.cli("db", "init")
    imported = _imports((project.path / "migrations" / "env.py").read_text())
    assert imported == {"alembic": {"context"}, "starmodel.migrations": {"migration_target", "run_env"}}
    starmodel_modules = [m for m in imported if m.split(".")[0] == "starmodel"]
    assert not [m for m in starmodel_modules if m.startswith(("starmodel.cli", "starmodel.adapters"))]
    for module, names in imported.items():
        loaded = importlib.import_module(module)
        assert all(hasattr(loaded, name) for name in names), (module, names)


def test_env_py_written_by_earlier_versions_still_migrates(project: Project) -> None:
    """Existing projects keep the env.py an earlier `db init` wrote (run_env from the adapter,
    migration_target from the CLI): the commands and plain Alembic still run it."""
    assert _imports(EARLIER_ENV_PY) == {
        "alembic": {"context"},
        "starmodel.adapters.driven.migrations": {"run_env"},
        "starmodel.cli.db": {"migration_target"},
    }
    project.cli("db", "init")
    (project.path / "migrations" / "env.py").write_text(EARLIER_ENV_PY)
    out = project.cli("migrate")
    assert "create table note" in out and "applied " in out
    assert "up to date" in project.cli("db", "current")

    env = {k: v for k, v in os.environ.items() if not k.startswith("STARMODEL_")}  # the recorded app
    plain = subprocess.run(
        [shutil.which("alembic") or "alembic", "-c", "migrations/alembic.ini", "downgrade", "-1"],
        cwd=project.path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert "Running downgrade" in plain.stderr
    assert "1 migration pending" in project.cli("db", "current")

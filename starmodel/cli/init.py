"""``starmodel init NAME``: a new project, ready to run (``starmodel run``) and to test (``pytest``).

A project is made from the files of ``starmodel/templates/project/common`` and of the chosen
template (``basic``, ``crud``, ``dashboard``) laid over them. Template files end in ``.tmpl``
(dropped when written; ``dot-`` at the start of a name becomes ``.``), and ``{{key}}`` in a
file's text or path is replaced by its value (``{{name}}``, ``{{title}}``...). Files at a
template's top whose name starts with ``_`` are values, not files (``_about.md`` is
``{{about}}``). The crud template also gets its ``migrations/`` folder and first migration,
made by StarModel's own migration commands run in the new project, and applied to its
SQLite database.

The helpers here (names, rendering, running StarModel commands in a project) serve
``starmodel make`` too (``starmodel/cli/make.py``).
"""

from __future__ import annotations

import json
import keyword
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

__all__ = [
    "TEMPLATES",
    "ProjectTemplate",
    "check_project_name",
    "init_command",
    "render_tree",
    "run_starmodel",
    "templates_root",
]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PROJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")

PROJECT_MODULES = frozenset(
    {"app", "main", "settings", "layout", "features", "conftest", "tests", "test", "migrations"}
)
"""Top-level names every project uses itself (a project is run from its folder)."""


@dataclass(frozen=True)
class ProjectTemplate:
    """One template of ``starmodel init``."""

    name: str
    summary: str
    first_migration: str | None = None  # its message, when the template has SQL entities


TEMPLATES: dict[str, ProjectTemplate] = {
    t.name: t
    for t in (
        ProjectTemplate("basic", "a counter per session and one shared by everybody (memory entities)"),
        ProjectTemplate("crud", "notes in a SQL table: create, edit, delete, a live list; migrations",
                        first_migration="create note"),
        ProjectTemplate("dashboard", "live server metrics fed by a periodic job, with a chart"),
    )
}


def templates_root() -> Path:
    """Where the templates are (package data of ``starmodel``)."""
    return Path(__file__).resolve().parent.parent / "templates"


# --------------------------------------------------------------------------- names


def _installed_modules() -> set[str]:
    """Top-level modules of the installed distributions."""
    try:
        return {name.lower() for name in metadata.packages_distributions()}
    except Exception:  # a broken distribution must not stop `init`
        return set()


def module_clash(name: str) -> str | None:
    """Why ``name`` cannot be used as a top-level Python name here, or ``None``."""
    lowered = name.lower()
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if lowered in sys.stdlib_module_names or lowered in sys.builtin_module_names:
        return f"{name!r} is a module of Python's standard library"
    if lowered == "starmodel":
        return f"{name!r} is StarModel's own module"
    if lowered in PROJECT_MODULES:
        return f"{name!r} is a module every StarModel project has"
    if lowered in _installed_modules():
        return f"{name!r} is the name of an installed Python module"
    return None


def check_project_name(name: str) -> str:
    """``name`` if it can name a project, else a one-line ``ClickException``."""
    if not _PROJECT_NAME.match(name):
        raise click.ClickException(
            f"{name!r} is not a valid project name: use letters, digits, '_' and '-', "
            "starting with a letter (e.g. my_app)"
        )
    clash = module_clash(name.replace("-", "_"))
    if clash:
        raise click.ClickException(f"{clash}: pick another project name")
    return name


def title_of(name: str) -> str:
    """``my_app`` -> ``My app``."""
    words = [w for w in re.split(r"[-_\s]+", name) if w]
    text = " ".join(words) or name
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- rendering


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{key}}`` of ``text`` by its value (an unknown key is a template bug)."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return _PLACEHOLDER.sub(value, text)


def _target_name(part: str, values: Mapping[str, str]) -> str:
    name = fill(part, values).removesuffix(".tmpl")
    return "." + name.removeprefix("dot-") if name.startswith("dot-") else name


def planned_files(source: Path, values: Mapping[str, str]) -> dict[Path, Path]:
    """``{relative target path: template file}`` of the template folder ``source``."""
    plan: dict[Path, Path] = {}
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or "__pycache__" in relative.parts:
            continue
        if len(relative.parts) == 1 and path.name.startswith("_") and not path.name.endswith(".tmpl"):
            continue  # a value of the template (``_about.md``), not a file
        plan[Path(*[_target_name(part, values) for part in relative.parts])] = path
    return plan


def render_tree(sources: Sequence[Path], target: Path, values: Mapping[str, str]) -> list[Path]:
    """Write the files of the template folders ``sources`` (later ones win) into ``target``;
    returns the written paths, relative to ``target``."""
    plan: dict[Path, Path] = {}
    for source in sources:
        plan.update(planned_files(source, values))
    for relative, template in sorted(plan.items()):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(fill(template.read_text(encoding="utf-8"), values), encoding="utf-8")
    return sorted(plan)


def template_value(source: Path, name: str) -> str:
    """The value ``_<name>.*`` at the top of a template folder, or ``""``."""
    for path in sorted(source.glob(f"_{name}.*")):
        return path.read_text(encoding="utf-8")
    return ""


# --------------------------------------------------------------------------- StarModel commands


_STEPS_SCRIPT = """\
import json, sys
from starmodel.cli.main import main
for argv in json.loads(sys.argv[1]):
    sys.argv = ["starmodel", *argv]
    main()
"""


def run_starmodel(project: Path, steps: Sequence[Sequence[str]], database_url: str) -> str:
    """Run StarModel commands (``[["db", "init"], ...]``) one after the other in a fresh
    Python process inside ``project``, on ``database_url``; returns their output, or raises a
    one-line ``ClickException`` with the first error."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("STARMODEL_APP", "STARMODEL_MIGRATIONS_DIR")
    }
    env["DATABASE_URL"] = database_url
    env["STARMODEL_MIGRATIONS_DIR"] = "migrations"  # recorded as is in alembic.ini: no absolute path
    done = subprocess.run(
        [sys.executable, "-c", _STEPS_SCRIPT, json.dumps([list(step) for step in steps])],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        reason = (errors or lines or [f"exit code {done.returncode}"])[-1].removeprefix("Error: ")
        raise click.ClickException(reason)
    return done.stdout


def revision_files(project: Path) -> set[str]:
    versions = project / "migrations" / "versions"
    return {p.name for p in versions.glob("*.py")} if versions.is_dir() else set()


def _setup_migrations(project: Path, name: str, message: str) -> str:
    """``db init`` (unless the folder exists), the first migration (unless there is one), and
    ``db migrate`` on the project's own SQLite file; returns what was done, in one line."""
    database = project / f"{name}.db"
    steps: list[list[str]] = []
    if not (project / "migrations" / "env.py").is_file():
        steps.append(["db", "init"])
    made = not revision_files(project)
    if made:
        steps.append(["db", "makemigrations", "-m", message])
    steps.append(["db", "migrate"])
    before = revision_files(project)
    try:
        run_starmodel(project, steps, f"sqlite:///{database}")
    except click.ClickException as exc:
        raise click.ClickException(
            f"the project was written, but its migrations could not be set up: {exc.message}"
        ) from None
    new = sorted(revision_files(project) - before)
    first = f"first migration {new[0]}" if new else "existing migrations"
    return f"migrations/: {first}, applied to {database.name}"


# --------------------------------------------------------------------------- the command


def _starmodel_version() -> str:
    try:
        return metadata.version("starmodel")
    except metadata.PackageNotFoundError:
        from starmodel import __version__

        return __version__


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command("init")
@click.argument("name")
@click.option("--template", "-t", "template", type=click.Choice(sorted(TEMPLATES)), default="basic",
              show_default=True, help="What the project starts with.")
@click.option("--force", is_flag=True,
              help="Write into an existing, non-empty folder (its files are overwritten).")
@click.option("--dir", "parent", default=".", metavar="PARENT", help="Where to create the project folder.")
def init_command(name: str, template: str, force: bool, parent: str) -> None:
    """Create the project NAME: a StarModel app organised by feature, with its tests.

    \b
    Templates:
      basic      a counter per session and one shared by everybody (memory entities)
      crud       notes in a SQL table: create, edit, delete, a live list; migrations ready
      dashboard  live server metrics fed by a periodic job (sm.every), with a chart
    """
    check_project_name(name)
    chosen = TEMPLATES[template]
    parent_dir = Path(parent)
    if not parent_dir.is_dir():
        raise click.ClickException(f"{parent}: no such folder (--dir names the folder to create {name}/ in)")
    target = parent_dir / name
    if target.exists() and not target.is_dir():
        raise click.ClickException(f"{_shown(target)} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise click.ClickException(
            f"{_shown(target)}/ already exists and is not empty: pass --force to write the project into it"
        )

    root = templates_root() / "project"
    source = root / template
    values = {
        "name": name,
        "title": title_of(name),
        "template": template,
        "starmodel_version": _starmodel_version(),
    }
    values |= {
        "about": fill(template_value(source, "about").strip(), values),
        "features_tree": fill(template_value(source, "features_tree"), values),
        "migrations_tree": fill(template_value(source, "migrations_tree").rstrip("\n"), values),
        "notes": fill(template_value(source, "notes"), values),
    }
    target.mkdir(parents=True, exist_ok=True)
    written = render_tree([root / "common", source], target, values)
    click.echo(
        f"created {_shown(target)}/ from the {template} template ({len(written)} files): {chosen.summary}"
    )
    if chosen.first_migration:
        click.echo(_setup_migrations(target.resolve(), name, chosen.first_migration))
    click.echo("next:")
    click.echo(f"  cd {_shown(target)}")
    click.echo("  starmodel run              # then open http://127.0.0.1:8000")
    click.echo("  pip install -e '.[test]' && pytest")

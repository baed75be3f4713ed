"""``starmodel make entity NAME`` and ``starmodel make page NAME``: add a feature to a project
made by ``starmodel init``.

A feature is a package in the project's ``features/`` folder; the project's
``features/__init__.py`` imports and sets up every such package, so writing the folder is all
the wiring there is. The files come from ``starmodel/templates/make/<kind>/`` (see
``starmodel/cli/init.py`` for the template format). A SQL entity in a project with a
``migrations/`` folder gets its migration too (made on a scratch SQLite database, so the
project's own database is left as it is).
"""

from __future__ import annotations

import keyword
import re
import tempfile
from pathlib import Path

import click

from starmodel.cli.init import render_tree, revision_files, run_starmodel, templates_root
from starmodel.core.signals import snake_case

__all__ = ["feature_names", "find_project", "make_group"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_RESERVED_FEATURES = frozenset({"test", "tests", "conftest", "features", "layout", "settings", "app"})
_RESERVED_CLASSES = frozenset(
    {"Entity", "StarModel", "Settings", "StateStore", "Field", "Any", "Annotated", "StringConstraints",
     "ShortText", "EventClient", "Request"}
)
"""Names the generated modules import or define: an entity may not take them."""
STORES = ("memory", "sql", "redis")


def find_project(folder: Path) -> Path:
    """``folder`` if it is a project made by ``starmodel init`` (``app.py`` and a
    ``features`` package), else a one-line ``ClickException``."""
    if (folder / "app.py").is_file() and (folder / "features" / "__init__.py").is_file():
        return folder
    raise click.ClickException(
        "not in a StarModel project: no app.py and features/ here "
        "(make one with `starmodel init NAME`, then run this inside it)"
    )


def feature_names(name: str) -> tuple[str, str, str]:
    """``(feature package, class name, title)`` of ``name`` (``TodoItem``, ``todo_item`` and
    ``todo-item`` all give ``("todo_item", "TodoItem", "Todo item")``), or a one-line
    ``ClickException`` for a name that cannot be one."""
    if not _NAME.match(name):
        raise click.ClickException(
            f"{name!r} is not a valid name: use letters, digits, '_' and '-', starting with a letter "
            "(e.g. Task or todo_item)"
        )
    feature = re.sub(r"_+", "_", snake_case(name.replace("-", "_"))).strip("_")
    words = feature.split("_")
    class_name = "".join(w[:1].upper() + w[1:] for w in words)
    title = " ".join(words)
    title = title[:1].upper() + title[1:]
    if snake_case(class_name) != feature:  # the entity's signal namespace must be the feature's name
        raise click.ClickException(
            f"{name!r} cannot name a feature and its entity alike: pick a name like TodoItem or todo_item"
        )
    if keyword.iskeyword(feature) or keyword.iskeyword(class_name):
        raise click.ClickException(f"{name!r} is a Python keyword: pick another name")
    if feature in _RESERVED_FEATURES or feature.startswith("test_"):
        raise click.ClickException(f"{name!r} is a name the project uses itself: pick another name")
    if class_name in _RESERVED_CLASSES:
        raise click.ClickException(f"{class_name!r} is a name StarModel code uses already: pick another name")
    if feature == "starmodel":
        raise click.ClickException("'starmodel' is the framework's own name: pick another name")
    return feature, class_name, title


def _defined_classes(project: Path) -> dict[str, Path]:
    """Classes defined at the top of the features' modules: ``{name: file}``."""
    found: dict[str, Path] = {}
    for path in sorted((project / "features").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^class\s+([A-Za-z_][A-Za-z0-9_]*)", text, re.M):
            found.setdefault(match.group(1), path.relative_to(project))
    return found


def _new_feature(project: Path, name: str, kind: str) -> tuple[str, str, str]:
    feature, class_name, title = feature_names(name)
    folder = project / "features" / feature
    if folder.exists():
        raise click.ClickException(f"features/{feature}/ exists already: pick another name")
    if kind != "page":
        existing = _defined_classes(project).get(class_name)
        if existing is not None:
            raise click.ClickException(
                f"class {class_name} exists already in {existing.as_posix()}: pick another name"
            )
    return feature, class_name, title


def _write(project: Path, kind: str, feature: str, class_name: str, title: str) -> list[Path]:
    values = {
        "feature": feature,
        "Entity": class_name,
        "title": title,
        "path": "/" + feature.replace("_", "-"),
        "project": project.name,
    }
    return render_tree([templates_root() / "make" / kind], project, values)


def _make_migration(project: Path, feature: str) -> str:
    """The migration that creates the new entity's table, made against a scratch database
    brought to the current head first (the project's own database is not touched)."""
    before = revision_files(project)
    with tempfile.TemporaryDirectory(prefix="starmodel-make-") as scratch:
        try:
            run_starmodel(
                project,
                [["db", "migrate"], ["db", "makemigrations", "-m", f"create {feature}"]],
                f"sqlite:///{Path(scratch) / 'scratch.db'}",
            )
        except click.ClickException as exc:
            raise click.ClickException(
                f"features/{feature}/ was written, but its migration could not be made: {exc.message} "
                f"(fix it, then run `starmodel db makemigrations -m 'create {feature}'`)"
            ) from None
    new = sorted(revision_files(project) - before)
    if not new:
        return "migrations/: no change found, no migration made"
    return f"migrations/: {new[0]} (apply it: starmodel db migrate)"


@click.group("make")
def make_group() -> None:
    """Add a feature to a project made by `starmodel init` (run inside it).

    Each feature is a package in features/ with its entities, pages and tests; the project
    sets up every package it finds there, so nothing else needs editing.
    """


@make_group.command("entity")
@click.argument("name")
@click.option("--store", type=click.Choice(STORES), default="memory", show_default=True,
              help="Where its state lives: server memory, a SQL table, or Redis.")
def make_entity_command(name: str, store: str) -> None:
    """Add features/<name>/: the entity NAME, a page showing it, and its tests."""
    project = find_project(Path.cwd())
    feature, class_name, title = _new_feature(project, name, "entity")
    written = _write(project, f"entity-{store}", feature, class_name, title)
    path = "/" + feature.replace("_", "-")
    click.echo(f"created features/{feature}/ ({len(written)} files): the {class_name} entity ({store}), "
               f"its page at {path} and its tests")
    if store == "sql" and (project / "migrations" / "env.py").is_file():
        click.echo(_make_migration(project, feature))
    elif store == "redis":
        click.echo("its tests need Redis at 127.0.0.1:6379 (they are skipped without it)")


@make_group.command("page")
@click.argument("name")
def make_page_command(name: str) -> None:
    """Add features/<name>/: a page at /<name>, in the navigation, and its test."""
    project = find_project(Path.cwd())
    feature, class_name, title = _new_feature(project, name, "page")
    written = _write(project, "page", feature, class_name, title)
    path = "/" + feature.replace("_", "-")
    click.echo(
        f"created features/{feature}/ ({len(written)} files): the page {title!r} at {path} and its test"
    )


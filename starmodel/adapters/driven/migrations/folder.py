"""A migrations folder's files, written from ``starmodel/templates/migrations/``, and the app
its ``alembic.ini`` records.

Template files end in ``.tmpl`` and take ``{{key}}`` placeholders, like the project templates:
``{{folder}}`` (the folder, as given) and ``{{app}}`` (the app it migrates).
"""

from __future__ import annotations

import configparser
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from starmodel.adapters.driven.migrations.engine import MigrationError

__all__ = ["APP_OPTION", "FOLDER_FILES", "INI_NAME", "folder_template", "read_app_target", "write_folder"]

INI_NAME = "alembic.ini"
APP_OPTION = "starmodel_app"  # the option of alembic.ini that names the app
FOLDER_FILES = (INI_NAME, "env.py", "script.py.mako", "README")


def folder_template(name: str) -> Traversable:
    """The template of the folder's file ``name`` (package data of ``starmodel``)."""
    return files("starmodel") / "templates" / "migrations" / f"{name}.tmpl"


def write_folder(folder: Path, app_target: str) -> list[str]:
    """Create ``folder`` with its files and an empty ``versions/``; returns what it wrote.

    A folder that exists with anything in it is refused (nothing is overwritten)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise MigrationError(
            f"{folder} already exists; remove it first or choose another folder "
            "(STARMODEL_MIGRATIONS_DIR)"
        )
    values = {"folder": folder.as_posix(), "app": app_target}
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    for name in FOLDER_FILES:
        text = folder_template(name).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "versions" / ".gitkeep").write_text("")
    return [*FOLDER_FILES, "versions/"]


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

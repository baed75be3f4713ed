"""Alembic migrations of the tables of an app's SQL entities.

- ``env``: what a migrations folder's ``env.py`` migrates (:class:`MigrationTarget`) and how
  (:func:`run_env`); ``autogenerate``: how revisions are written.
- ``folder``: the folder's files, from ``starmodel/templates/migrations/``.
- ``operations``: :class:`Migrations`, one folder and one database: status, make a revision,
  upgrade, downgrade, adopt, drop the app's tables.
- ``engine``: connecting, and errors said in one line.

The app itself is found by the caller (``starmodel.migrations``, the entry point of every
``env.py``); nothing here imports it. ``run_env`` stays importable from this package for the
``env.py`` files written by earlier versions.
"""

from starmodel.adapters.driven.migrations.engine import (
    VERSION_TABLE,
    MigrationError,
    display_url,
    first_line,
    run_async,
)
from starmodel.adapters.driven.migrations.env import (
    TARGET_ATTRIBUTE,
    AppliedMigration,
    MigrationTarget,
    run_env,
)
from starmodel.adapters.driven.migrations.folder import APP_OPTION, read_app_target
from starmodel.adapters.driven.migrations.operations import Migrations, MigrationStatus

__all__ = [
    "APP_OPTION",
    "TARGET_ATTRIBUTE",
    "VERSION_TABLE",
    "AppliedMigration",
    "MigrationError",
    "MigrationStatus",
    "MigrationTarget",
    "Migrations",
    "display_url",
    "first_line",
    "read_app_target",
    "run_async",
    "run_env",
]

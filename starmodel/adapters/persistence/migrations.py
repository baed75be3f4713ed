"""Old path of :mod:`starmodel.adapters.driven.migrations`: the ``env.py`` files written by
earlier versions import ``run_env`` from here, so every name of that package stays here."""

from starmodel.adapters.driven.migrations import (
    APP_OPTION,
    TARGET_ATTRIBUTE,
    VERSION_TABLE,
    AppliedMigration,
    MigrationError,
    Migrations,
    MigrationStatus,
    MigrationTarget,
    display_url,
    first_line,
    read_app_target,
    run_async,
    run_env,
)

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

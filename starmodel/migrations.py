"""The entry point of every migrations folder's ``env.py``: the app's tables, for Alembic.

A StarModel ``env.py`` is ``run_env(context, migration_target(context.config))``, both from
here: the target a ``starmodel db`` command prepared, or, under plain ``alembic``, the one of
the app recorded in ``alembic.ini``. Finding the app by its import string is composition
work, so it lives here (beside ``bootstrap``), not in the migrations adapter, and the
generated ``env.py`` depends on neither the CLI nor the adapter's layout.
"""

from __future__ import annotations

import logging
import os

from alembic.config import Config
from alembic.util import CommandError

from starmodel.adapters.driven.migrations import APP_OPTION, TARGET_ATTRIBUTE, MigrationTarget, run_env
from starmodel.adapters.driven.stores.sql import normalize_url
from starmodel.bootstrap import StarModel
from starmodel.core.errors import ConfigurationError, StarModelError
from starmodel.discovery import FoundApp, find_app

__all__ = ["find_starmodel", "migration_target", "run_env"]


def find_starmodel(target: str | None) -> tuple[FoundApp, StarModel]:
    """The app named by ``target`` (else ``STARMODEL_APP`` / ``app.py`` / ``main.py``), which
    must be a StarModel app.

    A bad ``DATABASE_URL`` is said as such before the app is imported (importing would fail on
    it less clearly). Raises ``StarModelError`` (``AppNotFound`` when no app is found).
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        normalize_url(url)
    found = find_app(target)
    if not isinstance(found.starmodel, StarModel):
        raise ConfigurationError(
            f"{found.import_string} is not a StarModel app: migrations need `sm = StarModel(...)`"
        )
    return found, found.starmodel


def migration_target(config: Config) -> MigrationTarget:
    """For ``env.py``: the target a command prepared, or (plain ``alembic``) the recorded app's."""
    prepared = config.attributes.get(TARGET_ATTRIBUTE)
    if isinstance(prepared, MigrationTarget):
        return prepared
    try:
        _, sm = find_starmodel(config.get_main_option(APP_OPTION) or None)
        _alembic_logging()
        return MigrationTarget.for_entities(sm.services.database, sm.sql_entities())
    except StarModelError as exc:
        raise CommandError(str(exc)) from None


def _alembic_logging() -> None:
    """Plain ``alembic`` runs show what they do (our alembic.ini has no logging sections)."""
    logger = logging.getLogger("alembic")
    if all(isinstance(h, logging.NullHandler) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

"""pytest fixtures for StarModel apps, registered as the ``starmodel`` pytest plugin (an entry
point of the package: installing StarModel makes them available to every test suite).

- ``starmodel_app(*entities, **options)``: a fresh app serving ``entities``, with its own
  memory store, its own SQLite file in the test's ``tmp_path``, a fixed secret key and no
  Redis; the environment (``DATABASE_URL``, ``REDIS_URL``...) is not read. ``options`` are
  settings (``debug=True``...).
- ``starmodel_client(*entities, **options)`` or ``starmodel_client(sm)``: an ``EventClient``
  for a fresh app (or for ``sm``), to open with ``async with``.

The plugin adds fixtures only (no hooks, nothing autouse), and imports StarModel's test
client only when a fixture is used.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

import pytest

if TYPE_CHECKING:
    from starmodel.bootstrap import StarModel
    from starmodel.core.entity import Entity
    from starmodel.testing.client import EventClient

__all__ = ["AppFactory", "ClientFactory", "starmodel_app", "starmodel_client"]

TEST_SECRET_KEY = "starmodel-tests-secret-key"


class AppFactory(Protocol):
    def __call__(self, *entities: type[Entity], **options: Any) -> StarModel: ...


class ClientFactory(Protocol):
    @overload
    def __call__(self, app: StarModel, /) -> EventClient: ...
    @overload
    def __call__(self, *entities: type[Entity], **options: Any) -> EventClient: ...


@pytest.fixture
def starmodel_app(tmp_path: Path) -> AppFactory:
    """Build a fresh StarModel app for this test: ``sm = starmodel_app(Counter, Todo)``.

    Each app gets its own memory store, its own SQLite database
    (``tmp_path/starmodel-<n>.db``, tables created at startup), its own files directory
    (``tmp_path/files-<n>``) and no Redis; ``options``
    override settings (``debug=True``, ``allowed_origins=(...)``...).
    """
    numbers = itertools.count(1)

    def build(*entities: type[Entity], **options: Any) -> StarModel:
        from starmodel.app.settings import Settings
        from starmodel.bootstrap import StarModel

        if not entities:
            raise TypeError("starmodel_app() needs the entity classes the app serves")
        number = next(numbers)
        settings = Settings(
            secret_key=TEST_SECRET_KEY,
            database_url=f"sqlite:///{tmp_path / f'starmodel-{number}.db'}",
            migrations_dir=str(tmp_path / f"migrations-{number}"),  # none: tables are created
            redis_url=None,
            files_dir=str(tmp_path / f"files-{number}"),  # file fields keep their files here
        )
        return StarModel(entities=list(entities), settings=settings, **options)

    return build


@pytest.fixture
def starmodel_client(starmodel_app: AppFactory) -> ClientFactory:
    """An ``EventClient``, to open in the test: ``async with starmodel_client(Counter) as
    client:`` (a fresh app, as ``starmodel_app`` builds it) or ``starmodel_client(sm)``."""

    def make(*args: Any, **options: Any) -> EventClient:
        from starmodel.bootstrap import StarModel
        from starmodel.testing.client import EventClient

        if len(args) == 1 and isinstance(args[0], StarModel):
            if options:
                raise TypeError("starmodel_client(sm) takes no settings: the app is built already")
            return EventClient(args[0])
        return EventClient(starmodel_app(*args, **options))

    return make

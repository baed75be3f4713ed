"""The adapters moved into ``driving/`` and ``driven/``; the module paths that code outside the
package imports (README, docs, the demo, plugins, ``env.py`` files of earlier versions) still
import, and give the very same objects."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

OLD_TO_NEW = [
    ("starmodel.adapters.live_stream", "starmodel.adapters.driving.live.stream",
     ["LiveHub", "LiveStream", "close_all_live_streams"]),
    ("starmodel.adapters.ui_theme", "starmodel.adapters.driving.ui.theme", ["MODES", "theme_picker"]),
    ("starmodel.adapters.plugins", "starmodel.adapters.driven.plugins",
     ["GROUPS", "Plugin", "discover", "load_plugin", "persistence_backend"]),
    ("starmodel.adapters.persistence", "starmodel.adapters.driven.stores", ["MemoryRepository"]),
    ("starmodel.adapters.persistence.migrations", "starmodel.adapters.driven.migrations",
     ["run_env", "MigrationTarget", "Migrations", "APP_OPTION", "TARGET_ATTRIBUTE"]),
]


@pytest.mark.parametrize(("old", "new", "names"), OLD_TO_NEW, ids=[row[0] for row in OLD_TO_NEW])
def test_old_path_gives_the_same_objects(old: str, new: str, names: list[str]) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"
    assert set(names) <= set(old_module.__all__)


def test_an_env_py_of_an_earlier_version_still_imports() -> None:
    """What `starmodel db init` wrote before ``starmodel.migrations`` existed."""
    namespace: dict[str, object] = {}
    exec("from starmodel.adapters.persistence.migrations import run_env", namespace)
    from starmodel.adapters.driven.migrations import run_env

    assert namespace["run_env"] is run_env


def test_old_names_of_the_app_stay(starmodel_app: Any) -> None:
    """``sm.records`` (now ``live_lists``) and ``sm.record_service`` (now ``crud_service``)."""
    from starmodel import Entity

    class OldNamesNote(Entity):
        text: str = ""

    sm = starmodel_app(OldNamesNote)
    assert sm.records is sm.live_lists is sm.web.live_lists
    assert sm.record_service is sm.crud_service is sm.web.crud_service

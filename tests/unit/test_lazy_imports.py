"""``import starmodel`` loads no store's library; an app that uses neither Redis nor migrations
never loads Redis's or Alembic's modules. Each check runs in a fresh interpreter."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORE_LIBRARIES = ("redis", "sqlalchemy", "sqlmodel", "alembic")


def loaded_libraries(code: str) -> list[str]:
    """Which of ``STORE_LIBRARIES`` a fresh interpreter has loaded after running ``code``."""
    report = textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & {set(STORE_LIBRARIES)!r})))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": "", "DATABASE_URL": ""}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + report],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_import_starmodel_loads_no_store_library() -> None:
    assert loaded_libraries("import starmodel") == []


def test_the_core_and_app_layers_load_no_store_library() -> None:
    code = """
        import starmodel.core.entity, starmodel.app.dispatcher, starmodel.app.uow
        from starmodel import Settings, event, toast
    """
    assert loaded_libraries(code) == []


def test_a_memory_app_serving_an_event_loads_neither_redis_nor_alembic() -> None:
    code = """
        import asyncio
        from starmodel import Entity, StarModel, event
        from starmodel.testing import EventClient

        class Counter(Entity):
            count: int = 0

            @event
            def increment(self) -> None:
                self.count += 1

        async def main() -> None:
            sm = StarModel(entities=[Counter], secret_key="lazy-imports-test")
            async with EventClient(sm) as client:
                await client.call(Counter.increment)
                assert (await client.state(Counter)).count == 1

        asyncio.run(main())
    """
    found = loaded_libraries(code)
    # the entity base is SQL-ready (SQLModel's metaclass), so those two are expected here
    assert "redis" not in found and "alembic" not in found, found


def test_lazy_names_are_the_real_ones() -> None:
    import starmodel
    from starmodel.adapters.driven.stores.sql_entity import Entity
    from starmodel.bootstrap import StarModel

    assert starmodel.Entity is Entity and starmodel.StarModel is StarModel
    lazy = set(starmodel._LAZY)
    assert {"Entity", "StarModel"} <= lazy
    assert set(starmodel.__all__) <= set(dir(starmodel)) | lazy
    for name, module in starmodel._LAZY.items():  # each lazy name is the one its module defines
        assert getattr(starmodel, name) is getattr(importlib.import_module(module), name)

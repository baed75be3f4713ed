"""Find the user's app: ``module:attr``, a module or package name, or a ``.py`` path.

Used by the CLI and by every migrations folder's ``env.py`` (through ``starmodel.migrations``),
so it lives outside the CLI package and says what is wrong with ``AppNotFound`` (the CLI turns
it into its one-line error).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from starmodel.bootstrap import StarModel
from starmodel.core.entity import Entity, registered_entities
from starmodel.core.errors import ConfigurationError, StarModelError

__all__ = ["AppNotFound", "FoundApp", "find_app"]

_DEFAULT_MODULES = ("app", "main")


class AppNotFound(ConfigurationError):
    """No app where one was looked for, or the module that should hold it cannot be imported."""


@dataclass
class FoundApp:
    """The app the CLI works on."""

    import_string: str
    asgi: Any
    starmodel: StarModel | None

    def entities(self) -> list[type[Entity]]:
        return self.starmodel.entities() if self.starmodel else registered_entities()


def find_app(target: str | None) -> FoundApp:
    """Import the app named by ``target`` (or ``STARMODEL_APP``, or ``app.py``/``main.py``)."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    target = target or os.environ.get("STARMODEL_APP")
    if not target:
        for name in _DEFAULT_MODULES:
            if Path(f"{name}.py").is_file():
                target = name
                break
        else:
            raise AppNotFound(
                "no app found: pass APP (e.g. 'myapp' or 'myapp.main:app'), set STARMODEL_APP, "
                "or run from a folder with app.py"
            )
    module_name, _, attr = target.partition(":")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise AppNotFound(f"no app found: {module_name} does not exist")
        sys.path.insert(0, str(path.resolve().parent))
        module_name = path.stem
    module = _import(module_name)
    if attr:
        if not hasattr(module, attr):
            raise AppNotFound(f"no app found: module {module_name!r} has no {attr!r}")
        return _found(f"{module_name}:{attr}", getattr(module, attr), module)
    for candidate in (module, _submodule(module, "app"), _submodule(module, "main")):
        if candidate is None:
            continue
        for name in ("app", "sm", "application"):
            value = getattr(candidate, name, None)
            if value is not None and _is_app(value):
                return _found(f"{candidate.__name__}:{name}", value, candidate)
    raise AppNotFound(
        f"no app found in {module_name!r}: define `app = StarModel(...).app` (or pass module:attr)"
    )


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise AppNotFound(f"no app found: there is no module {name!r}") from None
        raise AppNotFound(f"cannot import {name!r}: {exc}") from None
    except StarModelError:  # the app's own configuration (or none found): its message says it all
        raise
    except Exception as exc:
        raise AppNotFound(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from None


def _submodule(module: ModuleType, name: str) -> ModuleType | None:
    if not hasattr(module, "__path__"):
        return None
    try:
        return importlib.import_module(f"{module.__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{module.__name__}.{name}":
            return None
        raise AppNotFound(f"cannot import {module.__name__}.{name}: {exc}") from None
    except StarModelError:
        raise
    except Exception as exc:
        raise AppNotFound(
            f"cannot import {module.__name__}.{name}: {type(exc).__name__}: {exc}"
        ) from None


def _is_app(value: Any) -> bool:
    return isinstance(value, StarModel) or (callable(value) and hasattr(value, "router"))


def _found(import_string: str, value: Any, module: ModuleType) -> FoundApp:
    if isinstance(value, StarModel):
        return _checked(FoundApp(import_string + ".app", value.app, value))
    if not _is_app(value):
        raise AppNotFound(f"{import_string} is not an ASGI app or a StarModel")
    web = next((v for v in vars(module).values() if isinstance(v, StarModel) and v.app is value), None)
    if web is None:  # `app = StarModel(...).app`: the app knows its StarModel
        owner = getattr(getattr(value, "state", None), "starmodel", None)
        web = owner if isinstance(owner, StarModel) else None
    return _checked(FoundApp(import_string, value, web))


def _checked(found: FoundApp) -> FoundApp:
    """Fail now, with one line, on what would otherwise fail at the first request."""
    if found.starmodel is not None:
        found.starmodel.event_table()  # two entities sharing a namespace, ...
    return found

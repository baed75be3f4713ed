"""Plugins found through Python entry points, loaded one by one so a broken one never takes
the others (or the app, or the CLI) down with it.

Groups:

- ``starmodel.persistence``: storage backends. The entry point names a callable
  ``backend(settings) -> Callable[[], EntityRepository]``: given the app's settings it returns
  the factory of repositories (called once per unit of work; return the same object every
  time for a store without transactions). An entity uses one with
  ``model_config = {"store": StateStore.CUSTOM, "backend": "<entry point name>"}``.
- ``starmodel.files``: file stores for file fields (``store(settings) -> FileStore``), chosen
  with ``STARMODEL_FILES`` (see ``adapters/driven/files``).
- ``starmodel.cli``: extra ``starmodel`` commands (a ``click`` command or group).
- ``starmodel.ui``: UI components and field renderers, listed here and used by the UI adapter.

A package declares them in its ``pyproject.toml``:

    [project.entry-points."starmodel.persistence"]
    jsonfile = "starmodel_jsonfile:backend"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

__all__ = ["GROUPS", "Plugin", "discover", "load_plugin"]

GROUPS = ("starmodel.persistence", "starmodel.files", "starmodel.cli", "starmodel.ui")
log = logging.getLogger("starmodel.plugins")


@dataclass
class Plugin:
    """One entry point: where it comes from, and whether it loaded."""

    group: str
    name: str
    target: str
    package: str
    version: str
    loaded: bool = False
    error: str | None = None
    obj: Any = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "group": self.group, "name": self.name, "target": self.target, "package": self.package,
            "version": self.version, "loaded": self.loaded, "error": self.error,
        }


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    found = metadata.entry_points(group=group)
    unique: dict[tuple[str, str], metadata.EntryPoint] = {}
    for entry in found:  # the same distribution seen twice on sys.path counts once
        unique.setdefault((entry.name, entry.value), entry)
    return sorted(unique.values(), key=lambda e: e.name)


def load_plugin(entry: metadata.EntryPoint, group: str) -> Plugin:
    dist = entry.dist
    plugin = Plugin(
        group=group,
        name=entry.name,
        target=entry.value,
        package=dist.metadata["Name"] if dist is not None else "?",
        version=dist.version if dist is not None else "?",
    )
    try:
        plugin.obj = entry.load()
        _check(plugin)
        plugin.loaded = True
    except Exception as exc:  # a plugin's own bug: reported, never raised
        plugin.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log.warning("plugin %s (%s from %s) did not load: %s",
                    plugin.name, group, plugin.package, plugin.error)
    return plugin


def _check(plugin: Plugin) -> None:
    if plugin.group == "starmodel.persistence" and not callable(plugin.obj):
        raise TypeError("a persistence plugin must be a callable: backend(settings) -> repository factory")
    if plugin.group == "starmodel.cli":
        import click

        if not isinstance(plugin.obj, click.Command):
            raise TypeError("a CLI plugin must be a click command or group")


def discover(groups: tuple[str, ...] = GROUPS) -> list[Plugin]:
    """Every installed plugin of ``groups``, each loaded (or with the error that stopped it)."""
    return [load_plugin(entry, group) for group in groups for entry in _entry_points(group)]


def persistence_backend(name: str) -> Callable[..., Any]:
    """The loaded ``starmodel.persistence`` plugin called ``name``; ``LookupError`` saying
    what is installed (or why it did not load) otherwise."""
    plugins = discover(("starmodel.persistence",))
    for plugin in plugins:
        if plugin.name == name:
            if not plugin.loaded:
                raise LookupError(
                    f"persistence plugin {name!r} ({plugin.package}) did not load: {plugin.error}"
                )
            backend: Callable[..., Any] = plugin.obj
            return backend
    installed = ", ".join(p.name for p in plugins) or "none"
    raise LookupError(f"no persistence plugin named {name!r} is installed (installed: {installed})")

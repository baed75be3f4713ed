"""File stores: the local directory (``local``, the default) and plugins of the entry-point group
``starmodel.files``, chosen with ``STARMODEL_FILES`` (the entry point's name).

A plugin's entry point names a callable ``store(settings) -> FileStore``:

    [project.entry-points."starmodel.files"]
    s3 = "starmodel_s3:store"
"""

from __future__ import annotations

from pathlib import Path

from starmodel.adapters.driven.files.local import LocalFileStore
from starmodel.adapters.driven.plugins import discover
from starmodel.app.settings import Settings
from starmodel.core.errors import ConfigurationError
from starmodel.core.files import FileStore

__all__ = ["DEFAULT_FILES_DIR", "LocalFileStore", "file_store"]

DEFAULT_FILES_DIR = Path(".starmodel") / "files"


def file_store(settings: Settings) -> FileStore:
    """The file store ``settings.files`` names: ``local`` (in ``settings.files_dir``) or an
    installed ``starmodel.files`` plugin."""
    name = settings.files or "local"
    if name == "local":
        return LocalFileStore(settings.files_dir or DEFAULT_FILES_DIR)
    plugins = discover(("starmodel.files",))
    for plugin in plugins:
        if plugin.name == name:
            if not plugin.loaded:
                raise ConfigurationError(
                    f"file store plugin {name!r} ({plugin.package}) did not load: {plugin.error}"
                )
            try:
                store = plugin.obj(settings)
            except Exception as exc:  # the plugin's own failure to start
                raise ConfigurationError(f"file store plugin {name!r} failed to start: {exc}") from None
            if not isinstance(store, FileStore):
                raise ConfigurationError(f"file store plugin {name!r} must return a FileStore, not {store!r}")
            return store
    installed = ", ".join(p.name for p in plugins) or "none"
    raise ConfigurationError(
        f"no file store named {name!r}: use 'local' or an installed plugin ({installed})"
    )

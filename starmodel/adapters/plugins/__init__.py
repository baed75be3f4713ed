"""Old path of :mod:`starmodel.adapters.driven.plugins` (plugin discovery through entry points)."""

from starmodel.adapters.driven.plugins import GROUPS, Plugin, discover, load_plugin, persistence_backend

__all__ = ["GROUPS", "Plugin", "discover", "load_plugin", "persistence_backend"]

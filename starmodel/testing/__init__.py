"""Test helpers for StarModel apps and stores (use them from tests only).

- ``EventClient``: an in-process test client; calls go through the app's real HTTP path and
  answers are parsed (``CallResult``: signals, field errors, fragments, toasts, steps...).
  ``client.session()`` is another browser, ``session.watch()`` one of its tabs' live stream,
  ``client.settle()`` waits for background events. See ``docs/testing.md``.
- pytest fixtures ``starmodel_app`` and ``starmodel_client`` (``starmodel.testing.plugin``,
  registered as the ``starmodel`` pytest plugin when the package is installed).
- ``RepositoryContract``: the contract suite every ``EntityRepository`` passes; subclass it
  in a test module to check a persistence plugin (see ``starmodel.testing.contract``).

Names are imported on first use, so the pytest plugin loads this package cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import pytest
except ImportError:  # the test client works without pytest
    pass
else:
    # failed checks of the contract suite show the compared values, as in a plugin's own tests
    pytest.register_assert_rewrite(
        "starmodel.testing.contract", "starmodel.testing._contract_base", "starmodel.testing._contract_commit"
    )

if TYPE_CHECKING:
    from starmodel.testing.client import (
        BrowserSession,
        CallResult,
        EventClient,
        Fragment,
        LiveView,
        SSEEvent,
        Step,
        parse_sse,
    )
    from starmodel.testing.contract import RepositoryContract, RepositoryFactory

__all__ = [
    "BrowserSession",
    "CallResult",
    "EventClient",
    "Fragment",
    "LiveView",
    "RepositoryContract",
    "RepositoryFactory",
    "SSEEvent",
    "Step",
    "parse_sse",
]

_MODULES = {
    "RepositoryContract": "starmodel.testing.contract",
    "RepositoryFactory": "starmodel.testing.contract",
    **{
        name: "starmodel.testing.client"
        for name in ("BrowserSession", "CallResult", "EventClient", "Fragment", "LiveView", "SSEEvent",
                     "Step", "parse_sse")
    },
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'starmodel.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

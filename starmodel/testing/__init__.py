"""Test helpers for StarModel apps and stores (use them from tests only).

- ``EventClient``: an in-process test client; calls go through the app's real HTTP path and
  answers are parsed (``CallResult``: signals, field errors, fragments, toasts, steps...).
  ``client.session()`` is another browser, ``session.watch()`` one of its tabs' live stream,
  ``client.settle()`` waits for background events; with ``EventClient(sm, fake_clock=True)``,
  ``client.advance(s)`` moves time for ``starmodel.sleep`` and periodic jobs (``FakeClock``).
  See ``docs/testing.md``.
- pytest fixtures ``starmodel_app`` and ``starmodel_client`` (``starmodel.testing.plugin``,
  registered as the ``starmodel`` pytest plugin when the package is installed).
- The parts it is made of, for tests and benchmarks of their own: ``parse_sse`` and
  ``SSEReader`` read Server-Sent Events (``starmodel.testing.sse``); ``AsgiTransport``,
  ``AsgiLifespan``, ``http_scope`` and ``call_asgi`` drive an ASGI app in process
  (``starmodel.testing.asgi``).
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
    from starmodel.testing.asgi import AsgiLifespan, AsgiResponse, AsgiTransport, call_asgi, http_scope
    from starmodel.testing.client import BrowserSession, EventClient, LiveView
    from starmodel.testing.clock import FakeClock
    from starmodel.testing.contract import RepositoryContract, RepositoryFactory
    from starmodel.testing.results import CallResult, Fragment, Step
    from starmodel.testing.sse import SSEEvent, SSEReader, parse_sse
    from starmodel.testing.uploads import UploadResult, upload

__all__ = [
    "AsgiLifespan",
    "AsgiResponse",
    "AsgiTransport",
    "BrowserSession",
    "CallResult",
    "EventClient",
    "FakeClock",
    "Fragment",
    "LiveView",
    "RepositoryContract",
    "RepositoryFactory",
    "SSEEvent",
    "SSEReader",
    "Step",
    "UploadResult",
    "call_asgi",
    "http_scope",
    "parse_sse",
    "upload",
]

_MODULES = {
    **dict.fromkeys(("AsgiLifespan", "AsgiResponse", "AsgiTransport", "call_asgi", "http_scope"),
                    "starmodel.testing.asgi"),
    **dict.fromkeys(("BrowserSession", "EventClient", "LiveView"), "starmodel.testing.client"),
    **dict.fromkeys(("RepositoryContract", "RepositoryFactory"), "starmodel.testing.contract"),
    "FakeClock": "starmodel.testing.clock",
    **dict.fromkeys(("CallResult", "Fragment", "Step"), "starmodel.testing.results"),
    **dict.fromkeys(("SSEEvent", "SSEReader", "parse_sse"), "starmodel.testing.sse"),
    **dict.fromkeys(("UploadResult", "upload"), "starmodel.testing.uploads"),
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

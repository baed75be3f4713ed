"""Datastar answers: outputs as SSE events, toasts as HTML fragments; and Datastar's page syntax,
installed for the core on import (``syntax``)."""

from starmodel.adapters.driving.datastar import syntax as _syntax  # noqa: F401 - installs it

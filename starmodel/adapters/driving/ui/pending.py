"""Feedback while a request runs: Datastar's ``data-indicator`` on the element that sends it,
and its button disabled and marked busy until the answer comes.

The indicator is a local signal (its name starts with ``_``, so it is never sent to the
server): ``_pending.<key>`` is ``true`` from the moment the request leaves until its answer
ends. Hand-written pages do the same (see the README's "Pending" paragraph).
"""

from __future__ import annotations

from starmodel.core.events import EventSpec

__all__ = ["busy_while", "pending_signal", "sends_with_indicator"]


def pending_signal(*parts: str) -> str:
    """The indicator signal of one control: ``_pending.<parts joined by _>``."""
    return "_pending." + "_".join(part.replace("-", "_") for part in parts)


def sends_with_indicator(signal: str) -> dict[str, str]:
    """Attributes of the element whose action sends the request: its indicator."""
    return {"data-indicator": signal}


def busy_while(signal: str, spec: EventSpec | None = None, namespace: str | None = None) -> dict[str, str]:
    """Attributes of the button: disabled and ``aria-busy`` while ``signal`` is true (and,
    for an exclusive background event, while a run of it is going)."""
    condition = f"${signal}"
    if spec is not None and spec.exclusive and namespace is not None:
        condition += f" || ${namespace}._running?.{spec.name}"
    return {"data-attr:disabled": condition, "data-attr:aria-busy": f"({condition}) ? 'true' : 'false'"}

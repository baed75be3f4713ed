"""How the core's browser-facing values are written in a page: the syntax a web adapter hands in.

The core knows what an entity shows (its signals, whether the browser keeps it) and what an
event's action is (an HTTP method and a URL); how the page's client library writes them
(Datastar: a ``data-signals`` element, ``@post('/counter/increment')``) belongs to the web
adapter, which installs its ``PageSyntax`` with ``use_syntax`` (the Datastar adapter does when
it is imported, as ``import starmodel`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from starmodel.core.errors import ConfigurationError

__all__ = ["ClientKept", "PageSyntax", "page_syntax", "use_syntax"]


@dataclass(frozen=True)
class ClientKept:
    """An entity the browser keeps: under ``anchor``, in ``storage`` (``local`` or
    ``session``), these ``fields``."""

    anchor: str
    storage: str
    fields: tuple[str, ...]


class PageSyntax(Protocol):
    """Writes actions and entity elements in a page's client syntax."""

    def action(self, method: str, url: str, *, template: bool = False) -> str:
        """The expression that sends a ``method`` request to ``url`` (``template``: ``url`` is
        the body of a JavaScript template literal, with ``${...}`` parts)."""
        ...

    def entity_element(self, anchor: str, signals: dict[str, Any], kept: ClientKept | None) -> str:
        """The hidden element that gives the page an entity's signals (and, for an entity
        the browser keeps, restores it from the browser's storage)."""
        ...


_installed: list[PageSyntax] = []


def use_syntax(syntax: PageSyntax) -> None:
    """Install the page syntax the core writes with (the last one installed wins)."""
    _installed.append(syntax)


def page_syntax() -> PageSyntax:
    if not _installed:
        raise ConfigurationError(
            "no page syntax is installed: the web adapter installs one (import starmodel, or "
            "starmodel.adapters.driving.datastar)"
        )
    return _installed[-1]

"""How presence is drawn: a row of avatars (initials on a colour, or the viewer's image) and a
count, in an element that also tells the tab's live stream which instance the page shows.

Drawn as escaped text, as toasts are (``datastar/toast.py``): it is drawn again for every
change of the viewers, so it is kept cheap; a ``render`` of the app's own may return any
FastHTML component."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from html import escape
from typing import Any

from fastcore.xml import Safe
from fasthtml.common import NotStr, to_xml

from starmodel.core.presence import Viewer

__all__ = [
    "HERE_SIGNAL",
    "PALETTE",
    "SHOWN",
    "presence_dom_id",
    "presence_element",
    "presence_html",
    "viewer_avatars",
]

HERE_SIGNAL = "smhere"
"""``smhere.<namespace>.<key>``: the instances a page shows (its live stream sends them)."""
SHOWN = 8
"""Avatars drawn before the rest is summed up as ``+N``."""
PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4d7c0f")
_AVATAR = (
    "display:inline-grid;place-items:center;width:2rem;height:2rem;border-radius:999px;"
    "font-size:.75rem;font-weight:700;color:#fff;border:2px solid #fff;margin-left:-.4rem;"
    "object-fit:cover;background:"
)
Render = Callable[[list[Viewer]], Any]


def presence_dom_id(namespace: str, key: str) -> str:
    """The element id of an instance's presence (``presence-ticket-42``)."""
    return f"presence-{namespace}-{key}"


def colour_of(viewer: Viewer) -> str:
    return PALETTE[hashlib.sha256(viewer.id.encode()).digest()[0] % len(PALETTE)]


def _avatar(viewer: Viewer) -> str:
    name, vid = escape(viewer.name), escape(viewer.id)
    common = f'class="sm-avatar" title="{name}" data-viewer="{vid}" style="{_AVATAR}{colour_of(viewer)}"'
    if viewer.avatar:
        return f'<img src="{escape(viewer.avatar)}" alt="{name}" {common}>'
    return f"<span {common}>{escape(viewer.initials)}</span>"


def viewer_avatars(viewers: list[Viewer], *, shown: int = SHOWN) -> Safe:
    """The default drawing: up to ``shown`` avatars (name on hover), ``+N`` for the rest, and
    the count ("3 viewing")."""
    avatars = "".join(_avatar(viewer) for viewer in viewers[:shown])
    if len(viewers) > shown:
        more = len(viewers) - shown
        avatars += f'<span class="sm-avatar sm-avatar-more" style="{_AVATAR}#64748b">+{more}</span>'
    count = f"{len(viewers)} viewing" if viewers else "nobody here yet"
    return Safe(
        f'<span class="sm-avatars" style="display:inline-flex;padding-left:.4rem">{avatars}</span>'
        '<span class="sm-presence-count" style="margin-left:.5rem;font-size:.85rem;opacity:.75">'
        f"{count}</span>"
    )


def _markup(content: Any) -> str:
    """What a ``render`` returned, as HTML: components drawn, plain text escaped."""
    parts = content if isinstance(content, tuple | list) else (content,)
    html = []
    for part in parts:
        if isinstance(part, NotStr) or hasattr(part, "__html__"):
            html.append(str(part) if isinstance(part, NotStr) else part.__html__())
        elif isinstance(part, str):
            html.append(escape(part))
        elif part is not None:
            html.append(str(to_xml(part)))
    return "".join(html)


def presence_html(namespace: str, key: str, viewers: list[Viewer], render: Render | None = None) -> str:
    """The presence of one instance as HTML: drawn by ``render(viewers)`` (default
    ``viewer_avatars``), in an element whose ``data-signals`` make the tab join the
    instance's viewers; pushes replace it by its id."""
    inner = viewer_avatars(viewers) if render is None else _markup(render(viewers))
    signals = escape(json.dumps({HERE_SIGNAL: {namespace: {key: True}}}))
    return (
        f'<div id="{escape(presence_dom_id(namespace, key))}" class="sm-presence" '
        f'style="display:flex;align-items:center" data-signals="{signals}" '
        f'data-count="{len(viewers)}" aria-live="polite">{inner}</div>'
    )


def presence_element(namespace: str, key: str, viewers: list[Viewer], render: Render | None = None) -> Safe:
    """``presence_html`` for a FastHTML page (markup it inserts as it is)."""
    return Safe(presence_html(namespace, key, viewers, render))

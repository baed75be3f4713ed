"""How presence is drawn: a row of avatars (initials on a colour, or the viewer's image) and a
count, in an element that also tells the tab's live stream which instance the page shows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fasthtml.common import Div, Img, Span

from starmodel.core.presence import Viewer

__all__ = [
    "HERE_SIGNAL",
    "PALETTE",
    "SHOWN",
    "presence_dom_id",
    "presence_element",
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
    "object-fit:cover;background:{colour}"
)
Render = Callable[[list[Viewer]], Any]


def presence_dom_id(namespace: str, key: str) -> str:
    """The element id of an instance's presence (``presence-ticket-42``)."""
    return f"presence-{namespace}-{key}"


def colour_of(viewer: Viewer) -> str:
    return PALETTE[hashlib.sha256(viewer.id.encode()).digest()[0] % len(PALETTE)]


def viewer_avatars(viewers: list[Viewer], *, shown: int = SHOWN) -> Any:
    """The default drawing: up to ``shown`` avatars (name on hover), ``+N`` for the rest, and
    the count ("3 viewing")."""
    avatars = []
    for viewer in viewers[:shown]:
        style = _AVATAR.format(colour=colour_of(viewer))
        common = {"title": viewer.name, "cls": "sm-avatar", "style": style, "data_viewer": viewer.id}
        if viewer.avatar:
            avatars.append(Img(src=viewer.avatar, alt=viewer.name, **common))
        else:
            avatars.append(Span(viewer.initials, **common))
    if len(viewers) > shown:
        avatars.append(Span(f"+{len(viewers) - shown}", cls="sm-avatar sm-avatar-more",
                            style=_AVATAR.format(colour="#64748b")))
    count = f"{len(viewers)} viewing" if viewers else "nobody here yet"
    return (
        Span(*avatars, cls="sm-avatars", style="display:inline-flex;padding-left:.4rem"),
        Span(count, cls="sm-presence-count", style="margin-left:.5rem;font-size:.85rem;opacity:.75"),
    )


def presence_element(namespace: str, key: str, viewers: list[Viewer], render: Render | None = None) -> Any:
    """The presence of one instance: drawn by ``render(viewers)`` (default ``viewer_avatars``),
    in an element whose ``data-signals`` make the tab join the instance's viewers; pushes
    replace it by its id."""
    content = (render or viewer_avatars)(viewers)
    parts = content if isinstance(content, tuple | list) else (content,)
    return Div(
        *parts,
        id=presence_dom_id(namespace, key),
        cls="sm-presence",
        style="display:flex;align-items:center",
        data_signals=json.dumps({HERE_SIGNAL: {namespace: {key: True}}}),
        data_count=str(len(viewers)),
        aria_live="polite",
    )

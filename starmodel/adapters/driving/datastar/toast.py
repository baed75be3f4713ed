"""The HTML of a toast: the fragment a Datastar answer appends to the page's toast area
(``#starmodel-toasts``), styled with DaisyUI / Franken UI alert classes."""

from __future__ import annotations

from html import escape

__all__ = ["render_toast"]

_TOAST_CLASS = {
    "info": "alert alert-info",
    "success": "alert alert-success",
    "warning": "alert alert-warning",
    "error": "alert alert-error",
}


def render_toast(message: str, variant: str, duration_ms: int) -> str:
    """A DaisyUI/FrankenUI alert that removes itself after ``duration_ms``."""
    css = _TOAST_CLASS.get(variant, _TOAST_CLASS["info"])
    return (
        f'<div class="{css} starmodel-toast" role="alert" data-variant="{variant}" '
        f'data-init="setTimeout(() => el.remove(), {int(duration_ms)})">'
        f"<span>{escape(message)}</span></div>"
    )

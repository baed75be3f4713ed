"""Actions an event may return or yield besides components: navigation, toasts, scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Action",
    "Alert",
    "PatchSignals",
    "Redirect",
    "Script",
    "Toast",
    "ToastVariant",
    "alert",
    "patch_signals",
    "redirect",
    "script",
    "toast",
]

ToastVariant = Literal["info", "success", "warning", "error"]


class Action:
    """Base of the browser-side effects an event can ask for."""


@dataclass(frozen=True)
class Redirect(Action):
    url: str


@dataclass(frozen=True)
class Toast(Action):
    message: str
    variant: ToastVariant = "info"
    duration_ms: int = 4000


@dataclass(frozen=True)
class Alert(Action):
    message: str


@dataclass(frozen=True)
class Script(Action):
    code: str


@dataclass(frozen=True)
class PatchSignals(Action):
    signals: dict[str, Any] = field(default_factory=dict)


def redirect(url: str) -> Redirect:
    """Send the browser to ``url`` once the event's answer arrives."""
    return Redirect(url)


def toast(message: str, variant: ToastVariant = "info", duration_ms: int = 4000) -> Toast:
    """Show a short notice; ``variant`` is one of info, success, warning, error."""
    if variant not in ("info", "success", "warning", "error"):
        raise ValueError(f"unknown toast variant {variant!r}: use info, success, warning or error")
    return Toast(message, variant, duration_ms)


def alert(message: str) -> Alert:
    """Show a blocking browser ``alert()`` with ``message``."""
    return Alert(message)


def script(code: str) -> Script:
    """Run a JavaScript snippet in the page (trusted server code only, never user input)."""
    return Script(code)


def patch_signals(**signals: Any) -> PatchSignals:
    """Patch arbitrary Datastar signals, e.g. ``patch_signals(ui={"open": True})``."""
    return PatchSignals(dict(signals))

"""Outputs -> Datastar SSE events. Pure string building: no I/O, no framework objects."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from datastar_py.consts import ElementPatchMode
from datastar_py.sse import ServerSentEventGenerator as SSE
from fasthtml.common import to_xml

from starmodel.adapters.driving.datastar.toast import render_toast
from starmodel.core.actions import Alert, PatchSignals, Redirect, Script, Toast
from starmodel.core.events import EventSpec
from starmodel.core.json_text import json_text
from starmodel.core.messages import EventOutputs

__all__ = [
    "DatastarOutputsCodec",
    "SseText",
    "check_outputs",
    "error_events",
    "patch_signals_event",
    "render_outputs",
    "sse_comment",
]


class SseText(str):
    """Outputs already written as SSE events (by this adapter, in another process)."""

    __slots__ = ()


class DatastarOutputsCodec:
    """``EventOutputs`` across processes: written once as SSE text where they were made, sent
    as is by the processes that receive them (``core.messages.OutputsCodec``)."""

    def encode(self, fact: EventOutputs) -> str:
        return render_outputs(fact.outputs, selector=fact.selector, mode=fact.mode)

    def decode(self, data: object) -> list[object]:
        return [SseText(data)] if isinstance(data, str) and data else []


def check_outputs(outputs: Iterable[Any]) -> None:
    """Refuse, before an event commits, what this adapter could not send: a bare string, an
    unsafe redirect, something that is neither an action nor a component."""
    for item in outputs:
        if isinstance(item, PatchSignals | Toast | Alert | Script | SseText):
            continue
        if isinstance(item, Redirect):
            _safe_url(item.url)
        elif isinstance(item, str) and not hasattr(item, "__html__"):
            raise TypeError(_BARE_STRING)
        elif not (hasattr(item, "__html__") or hasattr(item, "__ft__")):
            raise TypeError(
                f"an event returned {type(item).__name__}; return components (anything with "
                "__html__ or __ft__), actions (toast, redirect...) or None"
            )


def patch_signals_event(signals: dict[str, Any], event_id: str | None = None) -> str:
    """One ``datastar-patch-signals`` event."""
    return str(SSE.patch_signals(json_text(signals), event_id=event_id))


def sse_comment(text: str = "") -> str:
    """A comment line: keeps idle connections open and detects gone clients."""
    return f": {text}\n\n"


def render_outputs(
    outputs: Iterable[Any],
    spec: EventSpec | None = None,
    *,
    selector: str | None = None,
    mode: str | None = None,
) -> str:
    """Every output of an event (or of one ``yield``) as consecutive SSE events; components
    go to the event's ``selector`` with its ``mode`` (``spec``'s, or those given)."""
    if spec is not None:
        selector, mode = spec.selector, spec.mode
    return "".join(render_output(item, selector, mode) for item in outputs)


_BARE_STRING = (
    "an event returned a bare string; wrap text in a component with an id "
    "(e.g. Div(text, id='status')) or return toast(text)"
)


def render_output(item: Any, selector: str | None = None, mode: str | None = None) -> str:
    if isinstance(item, SseText):
        return str(item)
    if isinstance(item, PatchSignals):
        return patch_signals_event(item.signals)
    if isinstance(item, Toast):
        return _append_to_toasts(render_toast(item.message, item.variant, item.duration_ms))
    if isinstance(item, Redirect):
        return str(SSE.execute_script(f"window.location.assign({_js_string(_safe_url(item.url))})"))
    if isinstance(item, Alert):
        return str(SSE.execute_script(f"alert({_js_string(item.message)})"))
    if isinstance(item, Script):
        return str(SSE.execute_script(item.code))
    if isinstance(item, str) and not hasattr(item, "__html__"):
        raise TypeError(_BARE_STRING)
    html = _to_html(item)
    return str(SSE.patch_elements(html, selector=selector, mode=ElementPatchMode(mode) if mode else None))


def error_events(
    message: str,
    *,
    namespace: str | None = None,
    field_errors: dict[str, str] | None = None,
) -> str:
    """What the page shows when an event is refused or fails: an error toast, and the field
    errors as the local signal ``$<namespace>._errors`` (for inline messages)."""
    body = ""
    if namespace and field_errors is not None:
        body += patch_signals_event({namespace: {"_errors": field_errors}})
    detail = "; ".join(f"{k}: {v}" for k, v in (field_errors or {}).items())
    text = f"{message} ({detail})" if detail else message
    body += _append_to_toasts(render_toast(text, "error", 6000))
    return body


def _append_to_toasts(html: str) -> str:
    return str(SSE.patch_elements(html, selector="#starmodel-toasts", mode=ElementPatchMode.APPEND))


def _to_html(item: Any) -> str:
    if hasattr(item, "__html__") and not hasattr(item, "__ft__"):
        return str(item.__html__())
    return str(to_xml(item))


def _js_string(text: str) -> str:
    return json.dumps(text).replace("</", "<\\/")


def _safe_url(url: str) -> str:
    lowered = url.strip().lower()
    if lowered.startswith(("javascript:", "data:", "vbscript:")):
        raise ValueError("redirect refused: only http(s) and relative URLs are allowed")
    return url

"""What an answer showed the page, read back from its Server-Sent Events: merged signals,
field errors, HTML fragments, toasts, redirects, alerts and scripts (``CallResult``, one
``Step`` per part of it).

Actions come back as the values an event returns (``Toast``, ``Redirect``...), so a test
compares them with ``==``; fragments are ``Fragment``s (their HTML, selector and mode).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any, cast

import httpx

from starmodel.core.actions import Action, Alert, Redirect, Script, Toast, ToastVariant
from starmodel.testing.sse import SSEEvent, parse_sse

__all__ = ["CallResult", "Fragment", "Outputs", "Step"]

TOASTS_SELECTOR = "#starmodel-toasts"
ERROR_HEADER = "x-starmodel-error"


@dataclass(frozen=True)
class Fragment:
    """HTML patched into the page: by its id (``selector`` ``None``), or into ``selector``
    with ``mode`` (``outer``, ``inner``, ``append``, ``remove``...). ``str(fragment)`` is
    its HTML; ``"text" in fragment`` searches it."""

    html: str
    selector: str | None = None
    mode: str = "outer"

    def __str__(self) -> str:
        return self.html

    def __contains__(self, text: str) -> bool:
        return text in self.html


class Outputs:
    """What a list of SSE events shows the page: the reading shared by ``CallResult``,
    ``Step`` and ``LiveView`` (a subclass gives ``events``)."""

    @property
    def events(self) -> list[SSEEvent]:
        """Every SSE event, in order."""
        raise NotImplementedError

    @property
    def signals(self) -> dict[str, Any]:
        """Every patched signal merged in order (as the page ends up holding them), without
        the local ``_errors`` signals (see ``field_errors``). A deleted record's signals are
        ``None`` (``{"todo": {"3": None}}``)."""
        merged: dict[str, Any] = {}
        for patch in self._signal_patches():
            _merge(merged, patch)
        state: dict[str, Any] = {}
        for namespace, values in merged.items():
            if isinstance(values, dict) and "_errors" in values:
                values = {k: v for k, v in values.items() if k != "_errors"}
                if not values:
                    continue
            state[namespace] = values
        return state

    @property
    def field_errors(self) -> dict[str, str]:
        """The field errors of a refused call (``{"amount": "Input should be ..."}``); the
        empty values a successful call sends to clear them are left out."""
        errors: dict[str, str] = {}
        for patch in self._signal_patches():
            for values in patch.values():
                found = values.get("_errors") if isinstance(values, dict) else None
                if isinstance(found, dict):
                    errors.update({str(k): str(v) for k, v in found.items()})
        return {name: message for name, message in errors.items() if message}

    @property
    def fragments(self) -> list[Fragment]:
        """The HTML patches, toasts and scripts aside (those are ``actions``)."""
        return [item for item in self._elements() if isinstance(item, Fragment)]

    @property
    def html(self) -> str:
        """The HTML of every fragment, joined (for ``"Saved" in result.html``)."""
        return "\n".join(fragment.html for fragment in self.fragments)

    @property
    def actions(self) -> list[Action]:
        """Toasts, redirects, alerts and scripts in the order they reach the page, as the
        values an event returns (``toast(...)``, ``redirect(...)``...), so they compare equal.
        A script that is exactly ``alert("...")`` counts as an ``Alert``."""
        return [item for item in self._elements() if isinstance(item, Action)]

    @property
    def toasts(self) -> list[Toast]:
        """``Toast(message, variant, duration_ms)``; an error answer's toast has variant
        ``error`` and the field errors in its message."""
        return [item for item in self.actions if isinstance(item, Toast)]

    @property
    def redirect(self) -> str | None:
        """Where the page is sent (the last redirect), or ``None``."""
        urls = [item.url for item in self.actions if isinstance(item, Redirect)]
        return urls[-1] if urls else None

    @property
    def alerts(self) -> list[str]:
        return [item.message for item in self.actions if isinstance(item, Alert)]

    @property
    def scripts(self) -> list[str]:
        return [item.code for item in self.actions if isinstance(item, Script)]

    def _signal_patches(self) -> list[dict[str, Any]]:
        patches = []
        for event in self.events:
            if event.type == "datastar-patch-signals":
                loaded = json.loads(event.value("signals") or "{}")
                if isinstance(loaded, dict):
                    patches.append(loaded)
        return patches

    def _elements(self) -> list[Fragment | Action]:
        found: list[Fragment | Action] = []
        for event in self.events:
            if event.type == "datastar-patch-elements":
                found.extend(_element_outputs(event))
        return found

    def _summary(self) -> str:
        parts = []
        if self.signals:
            parts.append(f"signals={self.signals!r}")
        if self.field_errors:
            parts.append(f"field_errors={self.field_errors!r}")
        if self.actions:
            parts.append(f"actions={self.actions!r}")
        if self.fragments:
            parts.append(f"fragments={[str(f) for f in self.fragments]!r}")
        return " ".join(parts)


class Step(Outputs):
    """One part of an answer: a ``yield`` of a streaming event, or one live-stream message."""

    def __init__(self, events: list[SSEEvent]) -> None:
        self._events = events

    @property
    def events(self) -> list[SSEEvent]:
        return list(self._events)

    def __repr__(self) -> str:
        return f"<Step {self._summary()}>"


class CallResult(Outputs):
    """The answer to one event call, as the browser received it.

    Attributes:
        status: the HTTP status (200, 204 when nothing is sent back, 422 for refused input,
            403, 404, 409, 500...).
        headers: the response headers.
        text: the raw SSE body.
        steps: one ``Step`` per ``yield`` of a streaming event (one for other events).
        error: the message of an error answer (``X-StarModel-Error``), else ``None``; a
            streaming event that fails after its first step answers 200 and shows an error
            toast instead.
    """

    def __init__(self, name: str, response: httpx.Response, parts: list[bytes]) -> None:
        self.name = name
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        self.text = b"".join(parts).decode("utf-8", "replace")
        self.steps = [Step(parse_sse(part.decode("utf-8", "replace"))) for part in parts]
        self.error: str | None = response.headers.get(ERROR_HEADER)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def events(self) -> list[SSEEvent]:
        return [event for step in self.steps for event in step.events]

    def __repr__(self) -> str:
        steps = f" steps={len(self.steps)}" if len(self.steps) > 1 else ""
        error = f" error={self.error!r}" if self.error else ""
        return f"<CallResult {self.name} {self.status}{error}{steps} {self._summary()}".rstrip() + ">"


def _merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for name, value in patch.items():
        current = into.get(name)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge(current, value)
        else:
            into[name] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


_SCRIPT = re.compile(r"^<script[^>]*>(.*)</script>\s*$", re.S)
_REDIRECT = re.compile(r'^window\.location\.assign\(("(?:[^"\\]|\\.)*")\)$', re.S)
_ALERT = re.compile(r'^alert\(("(?:[^"\\]|\\.)*")\)$', re.S)


def _element_outputs(event: SSEEvent) -> list[Fragment | Action]:
    html = event.value("elements") or ""
    selector = event.value("selector")
    mode = event.value("mode") or "outer"
    if selector == TOASTS_SELECTOR and mode == "append":
        return list(_ToastReader.read(html))
    script = _SCRIPT.match(html.strip()) if selector == "body" and mode == "append" else None
    if script is None:
        return [Fragment(html, selector, mode)]
    code = script.group(1)
    redirect = _REDIRECT.match(code)
    if redirect:
        return [Redirect(json.loads(redirect.group(1)))]
    alert = _ALERT.match(code)
    if alert:
        return [Alert(json.loads(alert.group(1)))]
    return [Script(code)]


class _ToastReader(HTMLParser):
    """Toasts back from the HTML StarModel renders them as (``data-variant``, the removal
    delay in ``data-init``, the message text)."""

    _DELAY = re.compile(r"el\.remove\(\),\s*(\d+)\)")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.toasts: list[tuple[str, str, int]] = []
        self._depth = 0
        self._current: list[Any] | None = None

    @classmethod
    def read(cls, html: str) -> list[Toast]:
        reader = cls()
        reader.feed(html)
        reader.close()
        return [Toast(text, cast(ToastVariant, variant), delay) for text, variant, delay in reader.toasts]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._current is not None:
            self._depth += 1
            return
        values = {name: value or "" for name, value in attrs}
        if "starmodel-toast" in values.get("class", "").split():
            delay = self._DELAY.search(unescape(values.get("data-init", "")))
            self._current = [[], values.get("data-variant", "info"), int(delay.group(1)) if delay else 4000]
            self._depth = 0

    def handle_endtag(self, tag: str) -> None:
        if self._current is None:
            return
        if self._depth:
            self._depth -= 1
            return
        text, variant, delay = self._current
        self.toasts.append(("".join(text).strip(), variant, delay))
        self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current[0].append(data)

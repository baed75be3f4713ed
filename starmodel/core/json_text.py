"""JSON text of the values sent to a browser or an API client, always valid JSON: Python's
``json`` writes bare ``NaN``/``Infinity`` (which no JSON parser reads) and cannot print an
integer of more than 4300 digits; such values go as strings instead."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["json_text"]


def json_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact JSON (``default`` turns other objects into JSON values, as for
    ``json.dumps``). A non-finite float is sent as ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``
    (what a float field that allows them reads back), an integer too long to print as ``null``."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=default)
    except ValueError:  # rare: only then is the value walked
        return json.dumps(_printable(value), separators=(",", ":"), allow_nan=False, default=default)


def _printable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            return None
    return value

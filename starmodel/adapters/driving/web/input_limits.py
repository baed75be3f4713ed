"""Limits on what the server reads from a request: JSON no deeper and no larger than a page ever
sends, whole numbers in ASCII digits and in range. Every value parsed from a client goes
through here, so a hostile input is a clear refusal, never a crash deep inside a parser."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = [
    "INT64_MAX",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "InputRefused",
    "json_too_deep",
    "read_int",
    "read_json",
]

MAX_JSON_DEPTH = 64
"""How deeply arrays and objects may nest in a JSON request (the parser recurses per level)."""
MAX_JSON_BYTES = 1_000_000
"""The largest JSON document read from a request."""
INT64_MAX = 2**63 - 1
"""The largest whole number a 64-bit column (and an SQL OFFSET or LIMIT) holds."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class InputRefused(ValueError):
    """A value the server will not read; the message says why, and may be shown to the client."""


def read_json(raw: str | bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON document from a client, refusing (``InputRefused``, a ``ValueError``) one
    larger than ``max_bytes``, nested deeper than ``max_depth``, not valid JSON, or using the
    ``NaN``/``Infinity`` words (JavaScript never sends them; they are not JSON)."""
    if len(raw) > max_bytes:
        raise InputRefused(f"JSON larger than {max_bytes} bytes")
    try:
        text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        raise InputRefused("JSON that is not valid text") from None
    if json_too_deep(text, max_depth):
        raise InputRefused(f"JSON nested deeper than {max_depth} levels")
    try:
        return _DECODER.decode(text)
    except InputRefused:
        raise
    except ValueError as exc:  # JSONDecodeError, or a number longer than Python converts
        raise InputRefused(f"not valid JSON ({str(exc).split(':', 1)[0]})") from None


def read_int(text: str, *, low: int = -INT64_MAX - 1, high: int = INT64_MAX) -> int:
    """``text`` as a whole number from ``low`` to ``high``: ASCII digits with an optional minus
    sign, nothing else (``int()`` would take ``" 7"``, ``"1_000"`` and non-ASCII digits, and
    fail on ``"²"``); ``InputRefused`` otherwise."""
    if not _WHOLE_NUMBER.fullmatch(text):
        raise InputRefused("must be a whole number")
    negative = text.startswith("-")
    if len(text.lstrip("-").lstrip("0")) > len(str(max(-low, high))):  # out of range (int() is slow)
        value = low - 1 if negative else high + 1
    else:
        value = int(text)
    if value < low:
        raise InputRefused(f"must be at least {low}")
    if value > high:
        raise InputRefused(f"must be at most {high}")
    return value


def json_too_deep(document: str | bytes, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than ``max_depth`` in a JSON ``document``
    (brackets inside strings aside), found without recursion; one with few brackets needs no
    scan. Bytes are scanned as they are (brackets, quotes and backslashes are single bytes
    in UTF-8, never part of another character)."""
    text = document.decode("latin-1") if isinstance(document, bytes) else document
    if text.count("[") + text.count("{") <= max_depth:
        return False
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth


def _refuse_constant(name: str) -> Any:
    raise InputRefused(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one for all: building one costs

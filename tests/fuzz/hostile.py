"""Hypothesis strategies for hostile input: JSON too deep or too big, wrong types, huge and
non-finite numbers, odd Unicode, null bytes, and header values a server would pass on."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = [
    "NASTY_TEXTS",
    "header_value",
    "json_body",
    "json_document",
    "json_value",
    "nasty_text",
    "query_string",
]

DEEP = 1_000  # the nesting that broke the parser (RecursionError) before limits existed

NASTY_TEXTS = (
    "", " ", "0", "-0", "1", "2", "-1", "007", "1.5", "1e3",
    "99999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "2147483648", "9" * 5_000, "-" + "9" * 400,
    "NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "1e-999",
    "²", "٣", "\uff11\uff12", "1_000", " 7", "0x10", "+5",
    "true", "false", "null", "[]", "{}", '""', '"x"', "[1,2]", '{"a":1}', "[[]]",
    "\x00", "a\x00b", "\x1b[31m", "\r\n", "\t", "\u202e", "\ufeff", "💥", "ß" * 300,
    "../../etc/passwd", "..", ".", "/", "//evil.example", "\\..\\x", "%00", "%2e%2e%2f",
    "<script>alert(1)</script>", "' OR 1=1 --", "${7*7}", "{{7*7}}",
    "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * 65 + "]" * 65,
    "[" * 64 + "]" * 64,
)

_LATIN1_VISIBLE = "".join(chr(c) for c in [*range(0x20, 0x7F), *range(0xA0, 0x100)]) + "\t"

LONG_TEXT = "x" * 100_000

nasty_text = st.one_of(
    st.sampled_from(NASTY_TEXTS),
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
"""A value as a form field, query parameter or path part might carry it."""

json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | nasty_text
    | st.just(LONG_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=6,
)
"""A JSON-ish value: any type, huge numbers, NaN and infinities (sent as the bare words)."""


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


json_document = st.one_of(
    json_value.map(json_text),
    st.integers(min_value=60, max_value=3 * DEEP).map(deep_json),
    st.integers(min_value=60, max_value=3 * DEEP).map(lambda d: '{"a":' * d + "0" + "}" * d),
    st.sampled_from(NASTY_TEXTS),
)
"""The text of a JSON document a client might send, valid or not."""

json_body = json_document | st.just(json.dumps({"k": "x" * 1_100_000}))  # over the size limit
"""A JSON document as a request body (bodies may be larger than query strings)."""


def query_string(names: list[str]) -> st.SearchStrategy[bytes]:
    """A query string with some of ``names`` (and maybe others), hostile values, percent-encoded
    or not (a raw ``&`` or ``=`` inside a value is fair game too)."""
    pair = st.tuples(st.sampled_from(names) if names else nasty_text, st.one_of(nasty_text, json_document))
    pairs = st.lists(pair | st.tuples(nasty_text, nasty_text), max_size=4)

    def encode(items: list[tuple[str, str]], raw: bool) -> bytes:
        safe = "&=%+;[]{}\":,/" if raw else ""  # raw: a value's '&', '=' or '%' is taken as it is
        return "&".join(
            f"{quote(name.encode('utf-8', 'surrogatepass'), safe=safe)}="
            f"{quote(value.encode('utf-8', 'surrogatepass'), safe=safe)}"
            for name, value in items
        ).encode("ascii")

    return st.builds(encode, pairs, st.booleans())


header_value = st.one_of(
    st.sampled_from([t for t in NASTY_TEXTS if all(ch in _LATIN1_VISIBLE for ch in t)]),
    st.text(alphabet=_LATIN1_VISIBLE, max_size=60),
).map(lambda text: text.encode("latin-1"))
"""A header value a server passes on (latin-1 bytes, no CR, LF or NUL)."""

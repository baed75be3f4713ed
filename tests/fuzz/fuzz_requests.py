"""Malformed requests for one route of the demo: its methods (and wrong ones), its path with
hostile parts, query strings and bodies shaped like what it reads (signals of its entity, form
signals, API records, sign-in forms) but with hostile values, and every header it looks at
set to something it should refuse."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from asgi_driver import Request
from demo_under_test import ORIGIN, Target, Visitors
from hostile import NASTY_TEXTS, header_value, json_body, json_value, nasty_text, query_string
from hypothesis import strategies as st

from starmodel.adapters.driving.ui.views import FORM_SIGNAL

__all__ = ["requests_for"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW")
PAGE_QUERY = ["page", "per_page", "q", "sort", "desc", "key", "version", "then", "form", "field", "next"]
UI_ACTIONS = ["list", "detail", "notice", "validate", "create", "update", "delete"]
FORM_FIELDS = ["email", "password", "password_confirm", "name", "next"]
STATIC_NAMES = [
    "starmodel.js", "datastar.js", "../pyproject.toml", "..", "a/../../x", "/etc/passwd", "\x00",
    "a\x00b.js", "%00", "x" * 300, "/".join(["y" * 200] * 8), "a\x1fb", "\\..\\x", "./starmodel.js",
    "starmodel.js/", "ǅ.js", "C:\\x",
]

IF_MATCH_DIGIT = '"²"'.encode("latin-1")  # a digit to str.isdigit(), not to int()
path_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)


def requests_for(target: Target, demo: Visitors) -> st.SearchStrategy[Request]:
    """Requests for ``target``, most of them past the Datastar and origin checks (to reach the
    parsing behind them), with a staff, visitor or hostile session cookie."""
    fields = _field_names(target, demo)
    query_names = [*target.spec.params, "_key", "datastar"] if target.spec else [*PAGE_QUERY, "datastar"]
    return st.builds(
        Request,
        method=st.sampled_from(list(target.methods) * 30 + list(METHODS)),
        path=_path(target, demo),
        query=query_string(query_names),
        headers=_headers(demo),
        body=_body(target, fields),
    )


def _field_names(target: Target, demo: Visitors) -> list[str]:
    if target.entity is not None:
        return sorted({*target.spec.params, *target.entity.model_fields}) if target.spec else []
    names: set[str] = set(FORM_FIELDS)
    for entity in demo.entities:
        if entity.options().table:
            names.update(entity.model_fields)
    return sorted(names)


def _path(target: Target, demo: Visitors) -> st.SearchStrategy[str]:
    parts = {
        "namespace": st.sampled_from(sorted(e.namespace() for e in demo.entities)) | path_text,
        "action": st.sampled_from(UI_ACTIONS) | path_text,
        "key": st.sampled_from(["1", "2", "3", "999"]) | st.sampled_from(NASTY_TEXTS[:40]) | path_text,
        "name:path": st.sampled_from(STATIC_NAMES) | path_text,
    }
    template = target.path
    names = [name for name in parts if "{" + name + "}" in template]
    if not names:
        return st.just(template)

    def fill(values: tuple[str, ...]) -> str:
        path = template
        for name, value in zip(names, values, strict=True):
            path = path.replace("{" + name + "}", value)
        return path

    return st.tuples(*(parts[name] for name in names)).map(fill)


def _headers(demo: Visitors) -> st.SearchStrategy[tuple[tuple[bytes, bytes], ...]]:
    """The headers a Datastar page sends, each one mostly right (or absent, where that is
    right too), else wrong; and the headers handlers parse, mostly wrong."""
    well_formed = {  # name -> (right values, wrong values); b"" stands for "not sent"
        b"cookie": (
            [demo.staff_cookie, demo.visitor_cookie],
            header_value.map(lambda value: b"starmodel_session=" + value)
            | st.sampled_from([b"", b"starmodel_session=" + b"A" * 8_000, demo.visitor_cookie + b"; x=y"]),
        ),
        b"datastar-request": ([b"true"], st.sampled_from([b"", b"false", b"TRUE"]) | header_value),
        b"content-type": (
            [b"application/json"],
            st.sampled_from([
                b"", b"application/x-www-form-urlencoded", b"text/plain", b"application/json; charset=utf-16",
                b"multipart/form-data; boundary=x", b"multipart/form-data", b"APPLICATION/JSON",
            ]) | header_value,
        ),
        b"origin": ([b"", ORIGIN], st.sampled_from([b"http://evil.example", b"null"]) | header_value),
        b"sec-fetch-site": ([b"", b"same-origin"], st.sampled_from([b"cross-site", b"none"]) | header_value),
    }
    parsed = {
        b"content-length": st.sampled_from([b"0", b"-1", "²".encode(), b"9" * 30, b"1e3"]) | header_value,
        b"if-match": st.sampled_from([b'"1"', b'W/"1"', b"*", IF_MATCH_DIGIT, b'"' + b"9" * 26 + b'"'])
        | header_value,
        b"last-event-id": st.sampled_from([b"deadbeef-" + b"9" * 5_000, b"deadbeef-1", b"-", b"x-y-z"])
        | header_value,
        b"x-starmodel-tab": header_value,
        b"accept": header_value,
    }

    @st.composite
    def build(draw: Any) -> tuple[tuple[bytes, bytes], ...]:
        headers = []
        for name, (right, wrong) in well_formed.items():
            value = draw(st.sampled_from(right)) if draw(st.integers(0, 4)) else draw(wrong)
            if value:
                headers.append((name, value))
        for name, values in parsed.items():
            if not draw(st.integers(0, 4)):
                headers.append((name, draw(values)))
        return tuple(headers)

    return build()


def _body(target: Target, fields: list[str]) -> st.SearchStrategy[bytes]:
    values = st.dictionaries(st.sampled_from(fields) if fields else nasty_text, json_value, max_size=5)
    shaped: list[st.SearchStrategy[Any]] = [values]
    if target.entity is not None:
        namespace = target.entity.namespace()
        shaped.append(values.map(lambda v: {namespace: v}))
        shaped.append(st.tuples(nasty_text, values).map(lambda kv: {namespace: {kv[0]: kv[1]}}))
    else:
        forms = st.sampled_from(["product_new", "product_edit", "user_new", "user_edit"]) | nasty_text
        shaped.append(st.tuples(forms, values).map(lambda fv: {FORM_SIGNAL: {fv[0]: fv[1]}}))
    form = st.dictionaries(st.sampled_from(fields) if fields else nasty_text, nasty_text, max_size=5).map(
        lambda pairs: "&".join(f"{quote(k)}={_quoted(v)}" for k, v in pairs.items())
    )
    return st.one_of(
        st.one_of(*shaped).map(lambda value: json.dumps(value, allow_nan=True)),
        json_body,
        form,
        st.just(""),
    ).map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(max_size=64)


def _quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"))

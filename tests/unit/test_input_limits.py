"""The readers of request input (JSON within depth and size, strict whole numbers) and the
writer of JSON sent out (valid whatever the values)."""

import json
import math

import pytest

from starmodel.adapters.driving.web.input_limits import (
    INT64_MAX,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    InputRefused,
    json_too_deep,
    read_int,
    read_json,
)
from starmodel.core.json_text import json_text


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- read_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["{}", "[]", '{"a": [1, {"b": null}]}', '"[[[["', nested(MAX_JSON_DEPTH), '{"a": "\\"]]]"}', "1e999"],
)
def test_reads_json_within_the_limits(text):
    assert read_json(text) == json.loads(text)
    assert read_json(text.encode("utf-16")) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (nested(MAX_JSON_DEPTH + 1), "nested deeper than"),
        (nested(100_000), "nested deeper than"),
        ('{"a":' * 2_000 + "0" + "}" * 2_000, "nested deeper than"),
        ("NaN", "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1', "not valid JSON"),
        ("9" * 5_000, "not valid JSON"),
        (b"\xff\xfe\xfd", "not valid"),
        ('"' + "x" * MAX_JSON_BYTES + '"', "larger than"),
    ],
)
def test_refuses_json_beyond_the_limits(text, why):
    with pytest.raises(InputRefused, match=why):
        read_json(text)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"a": "[" * 5_000, "b": ["\\\"" + "{" * 5_000]})
    assert not json_too_deep(text, MAX_JSON_DEPTH)
    assert read_json(text)["a"] == "[" * 5_000


def test_a_refusal_is_a_value_error():
    assert issubclass(InputRefused, ValueError)


# --- read_int ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("-7", -7), ("0012", 12), (str(INT64_MAX), INT64_MAX)])
def test_reads_whole_numbers_in_ascii_digits(text, value):
    assert read_int(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("²", "whole number"),
        ("٣", "whole number"),
        ("\uff11", "whole number"),
        (" 7", "whole number"),
        ("1_000", "whole number"),
        ("+5", "whole number"),
        ("1.0", "whole number"),
        ("", "whole number"),
        (str(INT64_MAX + 1), "at most"),
        ("9" * 100_000, "at most"),
        ("-" + "9" * 100_000, "at least"),
    ],
)
def test_refuses_anything_else(text, why):
    with pytest.raises(InputRefused, match=why):
        read_int(text)


def test_checks_the_range_it_is_given():
    assert read_int("10", low=1, high=10) == 10
    with pytest.raises(InputRefused, match="at least 1"):
        read_int("0", low=1, high=10)
    with pytest.raises(InputRefused, match="at most 10"):
        read_int("00000000011", low=1, high=10)


# --- json_text -----------------------------------------------------------------------------


def strict(text: str) -> object:
    def refuse(word: str) -> object:
        raise ValueError(word)

    return json.loads(text, parse_constant=refuse)


def test_writes_compact_json():
    assert json_text({"a": [1, "x"]}) == '{"a":[1,"x"]}'


def test_non_finite_floats_go_as_strings_and_unprintable_integers_as_null():
    value = {"a": [math.inf, -math.inf, math.nan], "b": 10**5_000, "c": 1.5, "d": True}
    assert strict(json_text(value)) == {"a": ["Infinity", "-Infinity", "NaN"], "b": None, "c": 1.5, "d": True}

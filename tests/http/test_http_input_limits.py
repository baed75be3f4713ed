"""Limits on what the server parses, over HTTP: JSON too deep or too large, whole numbers out
of range or not in ASCII digits, header values, static paths, non-finite floats. Each is a
clear 4xx that changes nothing, and what the server sends stays valid JSON."""

import json
from typing import Annotated

import pytest
from pydantic import AllowInfNan
from sm_http import (
    DATASTAR,
    asgi_client,
    live_server,
    open_stream,
    parse_sse,
    post_event,
    socket_client,
    state_signals,
)
from sqlmodel import Field

from starmodel import Entity, StarModel, event
from starmodel.adapters.driving.web.input_limits import MAX_JSON_DEPTH

DEEP = 1_000  # deep enough to exhaust the parser's recursion without a limit
DATASTAR_JSON = {**DATASTAR, "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def strict_json(text: str) -> object:
    """Parse as a browser does: ``NaN`` and ``Infinity`` are not JSON."""

    def refuse(word: str) -> object:
        raise ValueError(f"{word} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Gauge(Entity):
    level: float = 0.0
    peak: Annotated[float, AllowInfNan(True)] = 0.0
    items: list[object] = []

    @event
    def set_level(self, level: float):
        self.level = level

    @event
    def set_peak(self, peak: Annotated[float, AllowInfNan(True)]):
        self.peak = peak

    @event
    def fill(self, items: list[object]):
        self.items = items


class Part(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = "part"
    weight: float = 0.0
    count: int = 0


@pytest.fixture
async def sm(tmp_path):
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sm = StarModel(entities=[Gauge, Part], secret_key="test", database_url=database)
    sm.crud(Part)

    @sm.app.route("/page")
    async def page(request):
        return "a page of the app's own"

    async with sm.app.router.lifespan_context(sm.app):
        yield sm


@pytest.fixture
async def client(sm):
    async with asgi_client(sm) as client:
        yield client


async def gauge(sm) -> Gauge | None:
    memory = sm.services.repository_for(Gauge)
    [stored] = await memory.list(Gauge) or [None]
    return stored


async def parts(client) -> list[dict]:
    return (await client.get("/api/parts")).json()["items"]


# --- JSON depth and size -------------------------------------------------------------------


async def test_deeply_nested_signals_are_refused_before_parsing(sm, client):
    signals = f'{{"gauge": {{"items": {nested(DEEP)}}}}}'
    answer = await client.post("/gauge/fill", content=signals, headers=DATASTAR)
    assert answer.status_code == 422
    assert "nested deeper than" in answer.text
    assert await gauge(sm) is None


async def test_nesting_within_the_limit_is_read(sm, client):
    depth = MAX_JSON_DEPTH - 3  # {"gauge": {"items": [...]}} adds two levels
    answer = await post_event(client, "/gauge/fill", {"gauge": {"items": json.loads(nested(depth))}})
    assert answer.status_code == 200, answer.text
    assert (await gauge(sm)).items == json.loads(nested(depth))


async def test_a_deeply_nested_argument_is_refused(sm, client):
    answer = await client.post("/gauge/fill", params={"items": nested(DEEP)}, content="{}", headers=DATASTAR)
    assert answer.status_code == 422
    assert await gauge(sm) is None


async def test_deep_json_to_the_api_and_generated_forms_is_refused(client):
    api = await client.post("/api/parts", content=f'{{"name": {nested(DEEP)}}}', headers=JSON)
    assert api.status_code == 400 and "nested deeper than" in api.json()["errors"]["body"]
    signals = f'{{"smform": {nested(DEEP)}}}'
    form = await client.post("/_starmodel/ui/part/create", content=signals, headers=DATASTAR_JSON)
    assert form.status_code == 400 and "nested deeper than" in form.headers["x-starmodel-error"]
    assert await parts(client) == []


async def test_deep_json_to_any_page_is_refused_before_its_handler_reads_it(client):
    answer = await client.post("/page", content=nested(DEEP), headers=JSON)
    assert answer.status_code == 400 and "nested deeper than" in answer.text
    big = await client.post("/page", content=b"[" + b"0," * 600_000 + b"0]", headers=JSON)
    assert big.status_code == 413


async def test_a_live_stream_with_deep_watch_signals_still_opens(sm):
    watch = '{"deep": ' + nested(DEEP) + "}"
    async with (
        live_server(sm) as url,
        socket_client(url) as browser,
        open_stream(browser, "GET", "/_starmodel/live", params={"datastar": watch}, headers=DATASTAR) as live,
    ):
        assert (await live.next()).type == "datastar-patch-signals"


# --- whole numbers, headers, paths ---------------------------------------------------------


@pytest.mark.parametrize("page", ["99999999999999999999", "9223372036854775807", "1000000001", "²"])
async def test_a_page_number_out_of_range_is_refused(client, page):
    api = await client.get("/api/parts", params={"page": page})
    assert api.status_code == 422 and "page" in api.json()["errors"]
    listed = await client.get("/parts", params={"page": page})
    assert listed.status_code == 400
    fragment = await client.get("/_starmodel/ui/part/list", params={"page": page}, headers=DATASTAR)
    assert fragment.status_code == 422


@pytest.mark.parametrize("etag", ['"²"', '"٣"', '" 1"', '"1_0"', '"' + "9" * 30 + '"', "W/", '"-1"'])
async def test_if_match_must_be_an_etag_of_ascii_digits(client, etag):
    made = (await client.post("/api/parts", json={"name": "bolt"})).json()
    for method in ("PATCH", "DELETE"):
        path = f"/api/parts/{made['id']}"
        headers = {"If-Match": etag.encode("utf-8")}
        answer = await client.request(method, path, json={"count": 2}, headers=headers)
        assert answer.status_code == 400, answer.text
        assert "If-Match" in answer.json()["errors"]
    assert [p["count"] for p in await parts(client)] == [0]


@pytest.mark.parametrize("length", ["²", "-1", "1e3", "12abc", "9" * 40, ""])
async def test_a_content_length_that_is_not_a_number_is_no_server_error(client, length):
    declared = length.encode("latin-1")
    headers = {**DATASTAR_JSON, "Content-Length": declared}
    event = await client.post("/gauge/set_level", params={"level": "1"}, content=b"{}", headers=headers)
    assert event.status_code < 500
    form = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": declared}
    page = await client.post("/page", content=b"{}", headers=form)
    assert page.status_code in (400, 413)


@pytest.mark.parametrize(
    "name",
    [
        "%00",
        "a%00b.js",
        "a%01b",
        "%2e%2e/pyproject.toml",
        "..%2f..%2fpyproject.toml",
        "x" * 5_000,
        ("y" * 300 + "/") * 3,
    ],
)
async def test_static_paths_that_name_no_plain_file_are_not_found(client, name):
    for prefix in ("/_starmodel/static/", "/_starmodel/assets/"):
        answer = await client.get(prefix + name)
        assert answer.status_code == 404, (prefix, name, answer.status_code)
    assert (await client.get("/_starmodel/static/starmodel.js")).status_code == 200


# --- non-finite floats ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "inf", '"nan"'])
async def test_non_finite_floats_are_refused_for_parameters_and_fields(sm, client, value):
    argument = await client.post("/gauge/set_level", params={"level": value}, content="{}", headers=DATASTAR)
    assert argument.status_code == 422, argument.text
    signal = f'{{"gauge": {{"level": {value}}}}}'
    as_signal = await client.post("/gauge/set_level", content=signal, headers=DATASTAR)
    assert as_signal.status_code == 422, as_signal.text
    made = await client.post("/api/parts", content=f'{{"weight": {value}}}', headers=JSON)
    assert made.status_code in (400, 422), made.text
    assert await gauge(sm) is None and await parts(client) == []


async def test_a_field_that_allows_infinity_gets_it_and_the_answers_stay_json(sm, client):
    answer = await client.post("/gauge/set_peak", params={"peak": "Infinity"}, content="{}", headers=DATASTAR)
    assert answer.status_code == 200, answer.text
    assert (await gauge(sm)).peak == float("inf")
    for item in parse_sse(answer.text):
        for line in item.values("signals"):
            strict_json(line)
    assert state_signals(parse_sse(answer.text))["gauge"]["peak"] == "Infinity"


# --- SQL whole numbers ---------------------------------------------------------------------


async def test_a_whole_number_its_column_cannot_hold_is_refused_not_a_crash(client):
    made = await client.post("/api/parts", json={"count": 2**70})
    assert made.status_code == 422 and "count" in made.json()["errors"]
    key = await client.get("/api/parts/" + "9" * 30)
    assert key.status_code == 404
    assert await parts(client) == []


# --- methods -------------------------------------------------------------------------------


async def test_head_is_a_read_everywhere(client):
    made = (await client.post("/api/parts", json={"name": "nut"})).json()
    assert (await client.head(f"/api/parts/{made['id']}")).status_code == 200
    assert (await client.head("/api/parts")).status_code == 200
    assert (await client.head("/_starmodel/ui/part/list", headers=DATASTAR)).status_code == 200
    posted_as_head = await client.head("/_starmodel/ui/part/create", headers=DATASTAR_JSON)
    assert posted_as_head.status_code == 404  # create is a POST action; HEAD reads
    assert len(await parts(client)) == 1

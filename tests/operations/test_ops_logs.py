"""Request ids and JSON logs: a line per request and per event, with the request's id."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest
from ops_kit import DATASTAR, client, json_lines, make_app

from starmodel import ConfigurationError, Settings
from starmodel.adapters.driving.operations.logs import JsonFormatter
from starmodel.operations import EventObserver, ObservedEvent, watch_events


async def test_a_sane_request_id_is_kept_and_sent_back() -> None:
    async with client(make_app()) as http:
        answer = await http.post("/ops_tally/add", headers={**DATASTAR, "X-Request-ID": "edge-7f3a:12.x@lb"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "edge-7f3a:12.x@lb"


@pytest.mark.parametrize("given", [
    "a" * 129,                # too long
    "two words",              # a space
    "id\x7f",                 # a control character
    "<script>",               # markup
    "",                       # empty
])
async def test_an_insane_request_id_is_replaced_by_a_new_one(given: str) -> None:
    async with client(make_app()) as http:
        answer = await http.get("/favicon.ico", headers={"X-Request-ID": given})
        made = answer.headers["x-request-id"]
        assert made != given and len(made) == 32 and all(c in "0123456789abcdef" for c in made)


async def test_every_answer_gets_its_own_id_when_none_is_given() -> None:
    async with client(make_app()) as http:
        first = await http.get("/favicon.ico")
        second = await http.post("/ops_tally/add", headers=DATASTAR)
        missing = await http.get("/no/such/page")
        ids = {first.headers["x-request-id"], second.headers["x-request-id"], missing.headers["x-request-id"]}
        assert missing.status_code == 404 and len(ids) == 3


async def test_json_logs_have_a_line_per_request_and_per_event() -> None:
    sm = make_app(log_format="json")
    with json_lines() as lines:
        async with client(sm) as http:
            def given(request_id: str) -> dict[str, str]:
                return {**DATASTAR, "X-Request-ID": request_id}

            ok = await http.post("/ops_tally/add?amount=2", headers=given("req-1"))
            refused = await http.post("/ops_tally/add?amount=500", headers=given("req-2"))
            failed = await http.post("/ops_tally/crash", headers=given("req-3"))
    assert (ok.status_code, refused.status_code, failed.status_code) == (200, 422, 500)
    events = [line for line in lines if line["logger"] == "starmodel.events"]
    assert [(e["request_id"], e["entity"], e["event"], e["status"]) for e in events] == [
        ("req-1", "Tally", "add", "ok"),
        ("req-2", "Tally", "add", "invalid"),
        ("req-3", "Tally", "crash", "error"),
    ]
    assert all(isinstance(e["duration_ms"], float) and e["duration_ms"] >= 0 for e in events)
    requests = [line for line in lines if line["logger"] == "starmodel.requests"]
    assert [(r["request_id"], r["method"], r["path"], r["status"]) for r in requests] == [
        ("req-1", "POST", "/ops_tally/add", 200),
        ("req-2", "POST", "/ops_tally/add", 422),
        ("req-3", "POST", "/ops_tally/crash", 500),
    ]
    # the failure's own line (with its traceback) carries the request's id too
    failure = next(line for line in lines if line["logger"] == "starmodel.web")
    assert failure["request_id"] == "req-3" and "RuntimeError: boom" in failure["exception"]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        if line["logger"].startswith("starmodel"):  # (httpx, the client, logs its URLs)
            assert "amount=" not in json.dumps(line)  # never the query string


async def test_text_logs_add_no_request_or_event_lines() -> None:
    with json_lines() as lines:
        async with client(make_app()) as http:
            await http.post("/ops_tally/add", headers=DATASTAR)
    assert not [line for line in lines if line["logger"] in ("starmodel.events", "starmodel.requests")]


def test_the_json_formatter_keeps_fields_and_exceptions() -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": 40, "levelname": "ERROR", "msg": "a %s",
                                    "args": ("b",), "entity": "Tally"})
    try:
        raise KeyError("k")
    except KeyError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "a b" and line["level"] == "error" and line["entity"] == "Tally"
    assert "KeyError" in line["exception"] and line["time"].endswith("Z")


def test_the_log_format_setting() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"STARMODEL_LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(ConfigurationError, match="log_format must be 'text' or 'json', not 'xml'"):
        Settings.from_env({"STARMODEL_LOG_FORMAT": "xml"})


def test_an_app_without_logging_set_up_writes_json_lines_itself() -> None:
    """Served by a server that configures no logging (e.g. ``uvicorn app:app`` leaves the root
    logger alone), the app's own lines are JSON on standard error."""
    program = textwrap.dedent(f'''
        import asyncio, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from ops_kit import DATASTAR, client, make_app

        async def main():
            async with client(make_app(log_format="json")) as http:
                await http.post("/ops_tally/add", headers={{**DATASTAR, "X-Request-ID": "solo"}})

        asyncio.run(main())
    ''')
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert [(line["logger"], line["request_id"]) for line in lines if "request_id" in line] == [
        ("starmodel.events", "solo"), ("starmodel.requests", "solo"),
    ]
    assert {line["logger"] for line in lines if "request_id" not in line} <= {"starmodel.shutdown"}




async def test_an_observer_of_ones_own_hears_every_event() -> None:
    """``watch_events``: e.g. an error tracker hearing each event's status and duration."""
    heard: list[tuple[str, str, str, bool]] = []

    class Tracker(EventObserver):
        def finished(self, call: ObservedEvent) -> None:
            heard.append((call.entity, call.event, call.status, call.duration >= 0))

    class Broken(EventObserver):
        def started(self, call: ObservedEvent) -> None:
            raise RuntimeError("an observer's own bug")

    sm = make_app()
    watch_events(sm, Broken())  # a failing observer never fails the event
    watch_events(sm, Tracker())
    async with client(sm) as http:
        assert (await http.post("/ops_tally/add", headers=DATASTAR)).status_code == 200
        assert (await http.post("/ops_tally/nope", headers=DATASTAR)).status_code == 404
        assert (await http.post("/ops_tally/crash", headers=DATASTAR)).status_code == 500
    assert heard == [("Tally", "add", "ok", True), ("Tally", "crash", "error", True)]

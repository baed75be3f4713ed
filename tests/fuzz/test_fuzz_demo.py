"""Hostile requests to every route of the demo, in process: none is answered 5xx or shows a
traceback, a refused one (4xx) changes nothing stored, nothing is logged as an error or with a
traceback, and the app serves as before afterwards.

Deterministic (hypothesis derandomized, a fixed number of examples per route); the tally of
requests sent and 5xx answers is printed at the end of the run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgi_driver import Request
from demo_under_test import (
    ORIGIN,
    DemoUnderTest,
    LogRecords,
    Target,
    problems_with,
    session_cookie,
    tally,
    targets_of,
)
from demo_under_test import demo_app as demo_module
from fuzz_requests import requests_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

DEMO_ROUTES = targets_of(demo_module.sm)
"""What ``demo/app.py`` serves: every event of its event table and every other route."""
EXAMPLES_PER_ROUTE = 40
STRATEGIES: dict[str, st.SearchStrategy[Request]] = {}
RUN = "in-process demo (SQLite)"


async def fuzz_once(demo: DemoUnderTest, request: Request, log: LogRecords) -> list[str]:
    before = await demo.snapshot()
    answer = await demo.send(request)
    found = problems_with(answer)
    if 400 <= answer.status < 500:
        after = await demo.snapshot()
        changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
        if changed:
            found.append(f"a refused request ({answer.status}) changed what is stored: {', '.join(changed)}")
    await demo.settle()
    found.extend(f"logged: {record}" for record in log.take())
    tally(RUN).add(answer)
    if found:
        found.append(f"answer {answer.status}: {answer.body[:400]!r}")
    return found


def test_the_fuzzed_app_serves_every_route_of_the_demo(demo: DemoUnderTest) -> None:
    assert [t.name for t in targets_of(demo.sm)] == [t.name for t in DEMO_ROUTES]
    assert len(DEMO_ROUTES) > 40


@pytest.mark.parametrize("target", DEMO_ROUTES, ids=lambda target: target.name)
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_hostile_requests_are_refused_cleanly(
    demo: DemoUnderTest, server_log: LogRecords, target: Target, data: Any
) -> None:
    if target.name not in STRATEGIES:
        STRATEGIES[target.name] = requests_for(target, demo.visitors)
    request = data.draw(STRATEGIES[target.name], label="request")
    found = demo.run(fuzz_once(demo, request, server_log))
    assert not found, f"{request.describe()}\n" + "\n".join(found)


def test_the_demo_serves_as_before_after_the_fuzz(demo: DemoUnderTest, server_log: LogRecords) -> None:
    async def check() -> None:
        visitor = (b"cookie", session_cookie("after-the-fuzz"))
        headers = (b"datastar-request", b"true"), (b"content-type", b"application/json"), (b"origin", ORIGIN)
        event = Request("POST", "/counter/increment", b"amount=2", (*headers, visitor), b"{}")
        counted = await demo.send(event)
        assert counted.status == 200 and b'"count":2' in counted.body, counted
        home = await demo.send(Request("GET", "/", headers=(visitor,)))
        assert home.status == 200 and b"StarModel demo" in home.body
        products = await demo.send(Request("GET", "/api/products"))
        assert products.status == 200 and json.loads(products.body)["total"] >= 3

    demo.run(check())
    assert server_log.take() == []
    counted = tally(RUN)
    print(counted.line(RUN))
    assert counted.requests >= EXAMPLES_PER_ROUTE * len(DEMO_ROUTES) // 2
    assert counted.server_errors == 0

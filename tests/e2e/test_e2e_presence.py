"""Presence in real browsers: two ``starmodel run demo`` processes sharing one Redis and one
SQLite file, three Chromium sessions on the demo's ``/presence`` page (one on the first
process, two on the second). Everybody sees everybody; a closed tab drops out at once; the
tabs of a killed process drop out within the stated time (``presence_ttl`` 15 s plus one
``presence_beat`` of 5 s).
"""

from __future__ import annotations

import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .harness import REDIS_URL, ConfiguredDemoServer, drop_redis_prefix, free_port

pytestmark = pytest.mark.e2e

DEAD_PROCESS_DROPS_WITHIN = 15.0 + 5.0
"""What docs/presence.md states: the ttl, plus one beat of a surviving process."""
CLOSED_TAB_DROPS_WITHIN = 5.0

StartProcess = Callable[[str], ConfiguredDemoServer]


@pytest.fixture
def start_process(assets_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartProcess]:
    """Demo processes on this test's own Redis prefix and database file; each is stopped at the
    end (a process the test killed excepted), and none may log a traceback."""
    prefix = f"e2ep{secrets.token_hex(4)}"
    try:
        drop_redis_prefix(prefix)
    except Exception as exc:
        pytest.fail(f"this test needs Redis at {REDIS_URL}, which is not reachable: {exc}")
    env = {
        "REDIS_URL": REDIS_URL,
        "STARMODEL_REDIS_PREFIX": prefix,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SECRET_KEY": "e2e-presence",
    }
    started: list[ConfiguredDemoServer] = []

    def start(name: str) -> ConfiguredDemoServer:
        server = ConfiguredDemoServer(free_port(), assets_dir, tmp_path / f"server-{name}.log", env=dict(env))
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        drop_redis_prefix(prefix)
    report = getattr(request.node, "rep_call", None)
    for server in started:
        if report is not None and report.failed:
            print(f"--- log of the server on port {server.port} ---\n{server.log()}")
        assert "Traceback" not in server.log(), f"a server logged a traceback:\n{server.log()}"


def open_ticket(context: BrowserContext, base_url: str, ticket: str | None = None) -> Page:
    page = context.new_page()
    page.goto(base_url + "/presence" + (f"?ticket={ticket}" if ticket else ""))
    expect(page.locator(".sm-presence")).to_have_count(1)
    return page


def presence(page: Page) -> tuple[int, list[str]]:
    """How many the page says are looking, and their names (the avatars' titles)."""
    box = page.locator(".sm-presence")
    count = int(box.get_attribute("data-count") or "-1")
    names = [a.get_attribute("title") or "" for a in box.locator(".sm-avatar[title]").all()]
    return count, names


def expect_viewers(page: Page, count: int, timeout_ms: float = 10_000) -> None:
    expect(page.locator(".sm-presence")).to_have_attribute("data-count", str(count), timeout=timeout_ms)
    expect(page.locator(".sm-presence .sm-avatar[title]")).to_have_count(count, timeout=timeout_ms)


def test_three_browsers_on_two_processes_see_each_other_and_see_who_leaves(
    start_process: StartProcess, new_context: Callable[[], BrowserContext]
) -> None:
    server_a, server_b = start_process("A"), start_process("B")

    first = open_ticket(new_context(), server_a.url)
    ticket = re.sub(r"\D", "", first.locator("h3", has_text="Ticket #").first.inner_text())
    assert ticket, "the demo has a ticket to look at"
    expect_viewers(first, 1)
    assert first.request.get(server_a.url + "/presence?ticket=abc").status == 400
    assert first.request.get(server_a.url + "/presence?ticket=987654").status == 404
    second = open_ticket(new_context(), server_b.url, ticket)
    third = open_ticket(new_context(), server_b.url, ticket)

    for page in (first, second, third):
        expect_viewers(page, 3)
    names = {page: presence(page)[1] for page in (first, second, third)}
    assert names[first] == names[second] == names[third]  # the same list, in the same order
    assert len(set(names[first])) == 3

    # A tab closes: the others see it go at once.
    gone = presence(third)[1]
    third.close()
    started = time.monotonic()
    expect_viewers(first, 2, timeout_ms=CLOSED_TAB_DROPS_WITHIN * 1000)
    expect_viewers(second, 2, timeout_ms=CLOSED_TAB_DROPS_WITHIN * 1000)
    assert time.monotonic() - started <= CLOSED_TAB_DROPS_WITHIN
    assert set(presence(first)[1]) < set(gone)

    # The second process is killed (no clean stop: its tabs never leave): within the stated
    # time, its last viewer drops out of the page served by the first process.
    assert server_b.proc is not None
    server_b.proc.send_signal(signal.SIGKILL)
    server_b.proc.wait(10)
    server_b.killed = True
    killed = time.monotonic()
    expect_viewers(first, 1, timeout_ms=(DEAD_PROCESS_DROPS_WITHIN + 3) * 1000)
    took = time.monotonic() - killed
    assert took <= DEAD_PROCESS_DROPS_WITHIN + 1.0, f"the dead process's viewer stayed {took:.1f}s"
    print(f"closed tab: gone at once; killed process: its viewer gone after {took:.1f}s")

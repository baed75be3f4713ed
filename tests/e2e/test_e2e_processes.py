"""The demo as several server processes sharing one Redis (``REDIS_URL``) and one SQLite
file, in a real browser: what a tab on one process does shows live in a tab on another, a tab
whose process goes away catches up once it is back, and a tab whose live stream alone is cut
comes back to the current state.

They need the real Redis at 127.0.0.1:6379 (or at ``$STARMODEL_E2E_REDIS_URL``). Every test
has its own key prefix there (``STARMODEL_REDIS_PREFIX``, keys deleted afterwards) and its own
database file, so the shared counter starts at 0 and the todo list empty.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Request, expect

from .harness import (
    REDIS_URL,
    REPO,
    ConfiguredDemoServer,
    CuttableProxy,
    drop_redis_prefix,
    free_port,
    open_demo,
)
from .test_e2e_demo import is_live
from .test_e2e_todo import add, expect_done, no_error_toast, row, rows

pytestmark = pytest.mark.e2e

if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))
from demo.todos import SAMPLE_TODOS  # noqa: E402

SEEDED = len(SAMPLE_TODOS)  # the todos a first start puts in the empty list
RECONNECT_TIMEOUT_MS = 15_000  # Datastar retries the live stream at most 5 s apart

StartProcess = Callable[[str], ConfiguredDemoServer]
NewContext = Callable[[], BrowserContext]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted when the test ends."""
    prefix = f"e2e{secrets.token_hex(4)}"
    try:
        drop_redis_prefix(prefix)
    except Exception as exc:
        pytest.fail(f"these tests need Redis at {REDIS_URL}, which is not reachable: {exc}")
    try:
        yield prefix
    finally:
        drop_redis_prefix(prefix)


@pytest.fixture
def start_process(
    assets_dir: Path, tmp_path: Path, redis_prefix: str, request: pytest.FixtureRequest
) -> Iterator[StartProcess]:
    """``start_process(name)`` starts one more demo server process (own port and log) on this
    test's Redis prefix and database file. Every one is stopped when the test ends (SIGTERM,
    then SIGKILL), and the test fails if any of them logged a traceback or had to be killed."""
    started: list[tuple[str, ConfiguredDemoServer]] = []
    env = {
        "REDIS_URL": REDIS_URL,
        "STARMODEL_REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SECRET_KEY": "e2e-processes",  # the same for every process: one cookie works on each
    }

    def start(name: str) -> ConfiguredDemoServer:
        server = ConfiguredDemoServer(free_port(), assets_dir, tmp_path / f"server-{name}.log", env=dict(env))
        started.append((name, server))
        server.start()
        return server

    try:
        yield start
    finally:
        for _, server in started:
            server.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name, server in started:
            print(f"--- log of server {name} (port {server.port}) ---\n{server.log()}")
    for name, server in started:
        assert "Traceback" not in server.log(), f"server {name} logged a traceback:\n{server.log()}"
        assert server.stopped_cleanly(), f"server {name} did not stop on SIGTERM:\n{server.log()}"


# --- helpers ------------------------------------------------------------------------------


def shared(page: Page) -> str:
    return page.locator("#shared-value").inner_text()


def click_shared(page: Page, expected: int) -> None:
    """Click the shared counter's +1 and wait for this page to show ``expected``."""
    page.click("#shared-inc")
    expect(page.locator("#shared-value")).to_have_text(str(expected))


def record_live_requests(page: Page) -> list[Request]:
    found: list[Request] = []
    page.on("request", lambda r: found.append(r) if is_live(r.url) else None)
    return found


# --- the tests ----------------------------------------------------------------------------


def test_changes_on_one_process_show_live_on_the_other(
    start_process: StartProcess, new_context: NewContext
) -> None:
    server_a, server_b = start_process("A"), start_process("B")
    on_a = open_demo(new_context(), server_a.url)
    on_b = open_demo(new_context(), server_b.url)
    for page in (on_a, on_b):
        expect(page.locator("#shared-value")).to_have_text("0")

    # The global counter, both ways.
    click_shared(on_a, 1)
    expect(on_b.locator("#shared-value")).to_have_text("1")
    click_shared(on_b, 2)
    click_shared(on_b, 3)
    expect(on_a.locator("#shared-value")).to_have_text("3")

    # A SQL row added on A appears on B, with the same id; B ticks it, then deletes it.
    title, other = "cross-process milk", "cross-process bread"
    mine = add(on_a, title)
    theirs = row(on_b, title)
    expect(theirs).to_have_count(1)
    expect(theirs).to_have_id(mine.get_attribute("id") or "")
    expect_done(theirs, False)
    add(on_b, other, enter=True)
    expect(row(on_a, other)).to_have_count(1)

    theirs.get_by_test_id("toggle").click()
    expect_done(row(on_b, title), True)
    expect_done(row(on_a, title), True)
    theirs.get_by_test_id("delete").click()
    for page in (on_a, on_b):
        expect(row(page, title)).to_have_count(0)
        expect(row(page, other)).to_have_count(1)
        expect(rows(page)).to_have_count(SEEDED + 1)
        no_error_toast(page)

    # The activity feed (a Redis entity fed once, where each change happened) follows too.
    for page in (on_a, on_b):
        feed = page.locator("#activity-feed")
        expect(feed).to_contain_text("Shared counter is now 3")
        expect(feed).to_contain_text(f"Todo added: {other}")
        expect(feed).to_contain_text(re.compile(r"Todo #\d+ deleted"))


def test_tab_on_a_restarted_process_catches_up_with_changes_made_while_it_was_down(
    start_process: StartProcess, new_context: NewContext
) -> None:
    server_a, server_b = start_process("A"), start_process("B")
    actor = open_demo(new_context(), server_a.url)
    watcher = open_demo(new_context(), server_b.url)
    kept, doomed, added = "outage kept", "outage doomed", "outage added"
    add(actor, kept)
    add(actor, doomed)
    click_shared(actor, 1)
    expect(row(watcher, kept)).to_have_count(1)
    expect(row(watcher, doomed)).to_have_count(1)
    expect(watcher.locator("#shared-value")).to_have_text("1")
    live_requests = record_live_requests(watcher)

    server_b.stop()
    assert server_b.stopped_cleanly(), f"B did not stop cleanly:\n{server_b.log()}"
    # Meanwhile, on A: the counter moves, a row is added, one ticked, one deleted.
    click_shared(actor, 2)
    click_shared(actor, 3)
    add(actor, added)
    row(actor, kept).get_by_test_id("toggle").click()
    expect_done(row(actor, kept), True)
    row(actor, doomed).get_by_test_id("delete").click()
    expect(row(actor, doomed)).to_have_count(0)
    assert shared(watcher) == "1", "the tab on B got changes while B was down"
    assert row(watcher, added).count() == 0, "the tab on B got changes while B was down"

    with watcher.expect_response(lambda r: is_live(r.url), timeout=RECONNECT_TIMEOUT_MS) as live:
        server_b.start()  # same port: the tab's retries reach the new process
    assert live.value.status == 200
    assert live_requests[-1].headers.get("last-event-id"), live_requests[-1].headers

    # The tab reconnected by itself and shows the current state, with no reload.
    expect(watcher.locator("#shared-value")).to_have_text("3")
    expect_done(row(watcher, kept), True)
    expect(row(watcher, doomed)).to_have_count(0)
    expect(row(watcher, added)).to_have_count(1)  # a row created while the tab was away
    expect(rows(watcher)).to_have_count(SEEDED + 2)

    # And it is live again, both ways.
    click_shared(actor, 4)
    expect(watcher.locator("#shared-value")).to_have_text("4")
    row(watcher, added).get_by_test_id("toggle").click()
    expect_done(row(actor, added), True)
    no_error_toast(watcher)


def test_tab_comes_back_to_the_current_state_after_its_stream_is_cut_and_its_server_restarts(
    start_process: StartProcess, new_context: NewContext
) -> None:
    server = start_process("only")
    proxy = CuttableProxy(server.port)
    try:
        context = new_context()
        # The viewer reaches the server through the proxy, the session's other tab goes direct
        # (cookies do not depend on the port, so both tabs share the session).
        viewer = open_demo(context, proxy.url)
        direct = open_demo(context, server.url)
        kept, doomed, added = "cut kept", "cut doomed", "cut added"
        add(direct, kept)
        add(direct, doomed)
        click_shared(direct, 1)
        expect(viewer.locator("#shared-value")).to_have_text("1")
        expect(row(viewer, doomed)).to_have_count(1)
        live_requests = record_live_requests(viewer)

        # 1. Only the viewer's live stream goes away; the server runs on, and things change.
        proxy.pause()
        with viewer.expect_event("requestfailed", lambda r: is_live(r.url)):
            assert proxy.cut() > 0
        direct.click("#counter-inc5")
        expect(direct.locator("#counter-value")).to_have_text("5")
        click_shared(direct, 2)
        add(direct, added)
        row(direct, kept).get_by_test_id("toggle").click()
        expect_done(row(direct, kept), True)
        row(direct, doomed).get_by_test_id("delete").click()
        expect(row(direct, doomed)).to_have_count(0)
        assert shared(viewer) == "1", "the cut did not cut"
        assert viewer.locator("#counter-value").inner_text() == "0", "the cut did not cut"

        proxy.resume()
        expect(viewer.locator("#shared-value")).to_have_text("2", timeout=RECONNECT_TIMEOUT_MS)
        expect(viewer.locator("#counter-value")).to_have_text("5")
        expect(viewer.locator("#counter-doubled")).to_have_text("10")
        expect_done(row(viewer, kept), True)
        expect(row(viewer, doomed)).to_have_count(0)
        expect(row(viewer, added)).to_have_count(1)
        expect(rows(viewer)).to_have_count(SEEDED + 2)
        assert live_requests, "the tab got the changes without reconnecting"
        assert live_requests[-1].headers.get("last-event-id"), live_requests[-1].headers
        click_shared(direct, 3)
        expect(viewer.locator("#shared-value")).to_have_text("3")

        # 2. The server restarts (the proxy forwards the viewer's retries to the new process).
        server.stop()
        assert server.stopped_cleanly(), f"server did not stop cleanly:\n{server.log()}"
        with viewer.expect_response(lambda r: is_live(r.url), timeout=RECONNECT_TIMEOUT_MS) as live:
            server.start()
        assert live.value.status == 200

        # Redis and SQL kept the shared counter and the todos; the session counter lived in
        # the process's memory, so the new process has it at 0: a tab opened now shows that.
        fresh = open_demo(context, server.url)
        expect(fresh.locator("#shared-value")).to_have_text("3")
        expect(fresh.locator("#counter-value")).to_have_text("0")
        expect_done(row(fresh, kept), True)
        expect(rows(fresh)).to_have_count(SEEDED + 2)
        expect(viewer.locator("#shared-value")).to_have_text("3")
        expect(rows(viewer)).to_have_count(SEEDED + 2)

        # The reconnected tab is live again: the fresh tab's changes arrive.
        click_shared(fresh, 4)
        expect(viewer.locator("#shared-value")).to_have_text("4")
        row(fresh, added).get_by_test_id("toggle").click()
        expect_done(row(viewer, added), True)
        no_error_toast(viewer)

        # And it must show what the server holds now, like the fresh tab (without Redis, a
        # restarted server resyncs a reconnecting tab fully). What the reconnect brought came
        # before the live changes above, so no long wait is needed.
        expect(viewer.locator("#counter-value")).to_have_text("0", timeout=2_000)
        expect(viewer.locator("#counter-doubled")).to_have_text("0", timeout=2_000)
    finally:
        proxy.close()

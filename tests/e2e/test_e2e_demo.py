"""The demo app in a real browser: events, live updates across tabs and sessions, streaming
progress, reconnects, refused requests, and no network access."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, Request, Response, expect

from .harness import CuttableProxy, DemoServer, ExternalRequests, open_demo

pytestmark = pytest.mark.e2e

LIVE_PATH = "/_starmodel/live"
RECONNECT_TIMEOUT_MS = 15_000
SCREENSHOT = "/tmp/e2e-demo.png"

OpenDemo = Callable[..., Page]


def shared_value(page: Page) -> int:
    return int(page.locator("#shared-value").inner_text())


def is_live(url: str) -> bool:
    return url.split("?", 1)[0].endswith(LIVE_PATH)


def test_counter_buttons_update_count_doubled_and_reset(demo: OpenDemo) -> None:
    page = demo()
    value, doubled = page.locator("#counter-value"), page.locator("#counter-doubled")
    expect(value).to_have_text("0")
    expect(doubled).to_have_text("0")

    page.click("#counter-inc5")
    expect(value).to_have_text("5")
    expect(doubled).to_have_text("10")

    expect(page.locator("#counter-status")).to_have_text("")
    page.click("#counter-reset")
    expect(value).to_have_text("0")
    expect(doubled).to_have_text("0")
    expect(page.locator("#counter-status")).to_have_text("Counter reset!")
    toast = page.locator("#starmodel-toasts .starmodel-toast")
    expect(toast).to_have_count(1)
    expect(toast).to_have_text("Counter reset")

    # What the page shows is what the server holds: a reload renders the same state.
    page.click("#counter-inc5")
    expect(value).to_have_text("5")
    page.reload()
    expect(value).to_have_text("5")
    expect(doubled).to_have_text("10")

    page.click("#counter-inc")
    expect(value).to_have_text("6")
    expect(doubled).to_have_text("12")
    page.click("#counter-dec")
    expect(value).to_have_text("5")
    expect(doubled).to_have_text("10")
    expect(page.locator("#starmodel-toasts .starmodel-toast[data-variant=error]")).to_have_count(0)


def test_shared_counter_is_live_across_sessions_and_session_counter_is_not(
    demo: OpenDemo,
) -> None:
    alice, bob = demo(), demo()
    start = shared_value(alice)
    expect(bob.locator("#shared-value")).to_have_text(str(start))

    # Alice's own counter changes first; the live stream delivers changes in order, so once
    # Bob sees the shared click, he would already have seen Alice's counter had it leaked.
    alice.click("#counter-inc5")
    expect(alice.locator("#counter-value")).to_have_text("5")
    alice.click("#shared-inc")
    expect(alice.locator("#shared-value")).to_have_text(str(start + 1))
    expect(bob.locator("#shared-value")).to_have_text(str(start + 1))
    expect(bob.locator("#counter-value")).to_have_text("0")
    expect(bob.locator("#counter-doubled")).to_have_text("0")

    # And the other way round, with more than one click.
    bob.click("#shared-inc")
    expect(bob.locator("#shared-value")).to_have_text(str(start + 2))
    bob.click("#shared-inc")
    expect(bob.locator("#shared-value")).to_have_text(str(start + 3))
    expect(alice.locator("#shared-value")).to_have_text(str(start + 3))
    expect(alice.locator("#counter-value")).to_have_text("5")


def test_session_counter_is_live_across_tabs_of_one_session(
    demo: OpenDemo, new_context: Callable[[], BrowserContext]
) -> None:
    # +5 rather than +1/-1: those buttons are broken in the demo (see test_plus_one_...).
    context = new_context()
    tab1, tab2 = demo(context), demo(context)
    expect(tab2.locator("#counter-value")).to_have_text("0")

    tab1.click("#counter-inc5")
    expect(tab1.locator("#counter-value")).to_have_text("5")
    expect(tab2.locator("#counter-value")).to_have_text("5")
    expect(tab2.locator("#counter-doubled")).to_have_text("10")

    # Either tab drives the session.
    tab2.click("#counter-inc5")
    expect(tab2.locator("#counter-value")).to_have_text("10")
    expect(tab1.locator("#counter-value")).to_have_text("10")
    expect(tab1.locator("#counter-doubled")).to_have_text("20")

    tab1.click("#counter-reset")
    expect(tab2.locator("#counter-value")).to_have_text("0")
    expect(tab2.locator("#counter-doubled")).to_have_text("0")


def test_long_task_progress_streams_to_both_tabs(
    demo: OpenDemo, new_context: Callable[[], BrowserContext]
) -> None:
    context = new_context()
    tab1, tab2 = demo(context), demo(context)
    for tab in (tab1, tab2):
        expect(tab.locator("#task-status")).to_have_text("idle")
        expect(tab.locator("#task-percent")).to_have_text("0%")

    tab1.click("#task-run")
    # One consistent snapshot of the clicking tab mid-run: bar, percentage and status agree.
    tab1.wait_for_function(
        """() => {
            const pct = /^(\\d+)%$/.exec(document.querySelector("#task-percent").textContent);
            const bar = document.querySelector("#task-progress").getAttribute("value");
            const status = document.querySelector("#task-status").textContent;
            const step = document.querySelector("#task-step").textContent;
            return pct !== null && +pct[1] >= 1 && +pct[1] <= 99 && bar === pct[1]
                && status === "running" && /^Step \\d+ of 20$/.test(step);
        }"""
    )
    # The other tab follows while the task runs, not only at the end.
    expect(tab2.locator("#task-percent")).to_have_text(re.compile(r"^[1-9]\d?%$"))

    for tab in (tab1, tab2):
        expect(tab.locator("#task-percent")).to_have_text("100%")
        expect(tab.locator("#task-status")).to_have_text("done")
        expect(tab.locator("#task-progress")).to_have_attribute("value", "100")
    expect(tab1.locator("#task-step")).to_have_text("Step 20 of 20")

    tab1.click("#counter-inc5")
    expect(tab1.locator("#counter-value")).to_have_text("5")
    tab1.screenshot(path=SCREENSHOT, full_page=True)


def test_background_task_runs_on_after_its_tab_is_closed(
    demo: OpenDemo, new_context: Callable[[], BrowserContext]
) -> None:
    context = new_context()
    starter = demo(context)
    expect(starter.locator("#task-status")).to_have_text("idle")
    starter.click("#task-run-background")
    expect(starter.locator("#task-percent")).to_have_text(re.compile(r"^[1-9]\d?%$"))
    starter.close()  # the work is not tied to the tab that started it

    reopened = demo(context)
    # a tab opened mid-run shows the progress so far and follows it to the end
    expect(reopened.locator("#task-status")).to_have_text("running")
    expect(reopened.locator("#task-percent")).to_have_text(re.compile(r"^[1-9]\d?%$"))
    expect(reopened.locator("#task-percent")).to_have_text("100%")
    expect(reopened.locator("#task-status")).to_have_text("done")
    expect(reopened.locator("#task-step")).to_have_text("Step 40 of 40")


def test_tab_catches_up_after_its_live_stream_drops(
    demo: OpenDemo,
    demo_server: DemoServer,
    proxy: CuttableProxy,
    new_context: Callable[[], BrowserContext],
) -> None:
    context = new_context()
    # The viewer reaches the server through the proxy; its session's other tab and another
    # session go direct (cookies do not depend on the port, so both tabs share the session).
    viewer = open_demo(context, proxy.url)
    same_session = open_demo(context, demo_server.url)
    other_session = demo()
    start = shared_value(viewer)
    # A first change arrives live through the proxy; its event id is where the tab stands.
    other_session.click("#shared-inc")
    expect(viewer.locator("#shared-value")).to_have_text(str(start + 1))
    live_requests: list[Request] = []
    viewer.on("request", lambda r: is_live(r.url) and live_requests.append(r))

    proxy.pause()
    with viewer.expect_event("requestfailed", lambda r: is_live(r.url)):
        assert proxy.cut() > 0
    # While the viewer is cut off, its session and the shared counter change.
    same_session.click("#counter-inc5")
    expect(same_session.locator("#counter-value")).to_have_text("5")
    other_session.click("#shared-inc")
    expect(other_session.locator("#shared-value")).to_have_text(str(start + 2))
    other_session.click("#shared-inc")
    expect(other_session.locator("#shared-value")).to_have_text(str(start + 3))
    assert viewer.locator("#counter-value").inner_text() == "0", "the cut did not cut"
    assert shared_value(viewer) == start + 1, "the cut did not cut"

    proxy.resume()
    expect(viewer.locator("#shared-value")).to_have_text(str(start + 3), timeout=RECONNECT_TIMEOUT_MS)
    expect(viewer.locator("#counter-value")).to_have_text("5")
    expect(viewer.locator("#counter-doubled")).to_have_text("10")
    assert live_requests, "the page got the changes without reconnecting"
    # The retry says where the tab stopped, so the server can replay what it missed.
    assert live_requests[-1].headers.get("last-event-id"), live_requests[-1].headers

    # The reconnected stream is live again.
    same_session.click("#counter-inc5")
    expect(viewer.locator("#counter-value")).to_have_text("10")
    other_session.click("#shared-inc")
    expect(viewer.locator("#shared-value")).to_have_text(str(start + 4))


def test_tab_resyncs_after_server_restart(
    start_server: Callable[[], DemoServer], new_context: Callable[[], BrowserContext]
) -> None:
    server = start_server()
    context = new_context()
    page = open_demo(context, server.url)
    page.click("#counter-inc5")
    expect(page.locator("#counter-value")).to_have_text("5")
    page.click("#shared-inc")
    expect(page.locator("#shared-value")).to_have_text("1")

    server.stop()
    assert server.stopped_cleanly(), f"server did not stop cleanly:\n{server.log()}"
    # Memory entities do not survive a restart: a reload now shows the defaults, and a tab
    # that reconnects must show them too (a full resync), not what it had before.
    with page.expect_response(lambda r: is_live(r.url), timeout=RECONNECT_TIMEOUT_MS) as live:
        server.start()
    assert live.value.status == 200
    reloaded = open_demo(context, server.url)
    expect(reloaded.locator("#counter-value")).to_have_text("0")
    expect(reloaded.locator("#shared-value")).to_have_text("0")
    reloaded.close()
    expect(page.locator("#counter-value")).to_have_text("0")
    expect(page.locator("#counter-doubled")).to_have_text("0")
    expect(page.locator("#shared-value")).to_have_text("0")

    # And it is live on the new server: the same session cookie still works.
    page.click("#counter-inc5")
    expect(page.locator("#counter-value")).to_have_text("5")
    other_tab = open_demo(context, server.url)
    expect(other_tab.locator("#counter-value")).to_have_text("5")
    other_tab.click("#counter-inc5")
    expect(page.locator("#counter-value")).to_have_text("10")


def test_bad_input_is_refused_with_422_and_changes_nothing(demo: OpenDemo) -> None:
    page = demo()
    page.click("#counter-inc5")
    expect(page.locator("#counter-value")).to_have_text("5")

    bad_url = "/counter/increment?amount=%22abc%22"
    with page.expect_response(lambda r: "amount=%22abc%22" in r.url) as wire:
        seen_by_page = page.evaluate(
            """async (url) => {
                const r = await fetch(url, {method: "POST", headers: {"Datastar-Request": "true"}});
                return {status: r.status, body: await r.text()};
            }""",
            bad_url,
        )
    response = wire.value
    assert response.status == 422, response.status
    assert "Invalid input for increment" in response.headers["x-starmodel-error"]
    # starmodel.js hands SSE error answers to Datastar as 200 so it applies the error toast;
    # the body is the error events either way.
    assert "datastar-patch-elements" in seen_by_page["body"]
    assert "valid integer" in seen_by_page["body"]

    page.reload()
    expect(page.locator("#counter-value")).to_have_text("5")
    expect(page.locator("#counter-doubled")).to_have_text("10")

    no_header = page.evaluate(
        """async () => {
            const r = await fetch("/counter/increment", {method: "POST"});
            return {status: r.status, error: r.headers.get("X-StarModel-Error")};
        }"""
    )
    assert no_header["status"] == 403, no_header
    assert "Datastar-Request" in (no_header["error"] or "")
    page.reload()
    expect(page.locator("#counter-value")).to_have_text("5")


def test_plus_one_ignores_the_amount_box(demo: OpenDemo) -> None:
    """+1 adds one, whatever is typed in the "amount" box (which belongs to "Add")."""
    page = demo()
    page.fill("#counter-amount", "7")
    page.click("#counter-inc")
    expect(page.locator("#counter-value")).to_have_text("1")
    page.click("#counter-dec")
    expect(page.locator("#counter-value")).to_have_text("0")


def test_add_box_shows_field_error_then_clears_it(demo: OpenDemo) -> None:
    page = demo()
    error = page.locator("#counter-error")
    expect(error).to_have_text("")

    page.fill("#counter-amount", "abc")
    page.click("#counter-add")
    expect(error).to_contain_text("valid integer")
    toast = page.locator("#starmodel-toasts .starmodel-toast[data-variant=error]")
    expect(toast).to_contain_text("Invalid input for add")
    expect(page.locator("#counter-value")).to_have_text("0")

    page.fill("#counter-amount", "5000")
    page.click("#counter-add")
    expect(page.locator("#starmodel-toasts")).to_contain_text("Add at most 1000 at a time")
    expect(page.locator("#counter-value")).to_have_text("0")

    page.fill("#counter-amount", "7")
    page.click("#counter-add")
    expect(page.locator("#counter-value")).to_have_text("7")
    expect(page.locator("#counter-doubled")).to_have_text("14")
    expect(error).to_have_text("")


def test_page_renders_with_local_assets_only(
    demo_server: DemoServer,
    new_context: Callable[[], BrowserContext],
    external_requests: ExternalRequests,
) -> None:
    context = new_context()
    page = context.new_page()
    asset_status: dict[str, int] = {}

    def on_response(response: Response) -> None:
        if not is_live(response.url):
            asset_status[response.url] = response.status

    page.on("response", on_response)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    page.goto(demo_server.url + "/", wait_until="load")
    expect(page.locator("#counter-value")).to_have_text("0")  # Datastar ran
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    styles = page.eval_on_selector_all("link[rel=stylesheet]", "els => els.map(e => e.href)")
    assert any(re.search(r"/_starmodel/assets/datastar\.[0-9a-f]{10}\.js$", s) for s in scripts), scripts
    for url in scripts + styles:
        assert url.startswith(demo_server.url + "/"), f"asset not served locally: {url}"
        assert asset_status.get(url) == 200, (url, asset_status)
    assert external_requests.urls == []
    assert errors == []

    # The app's pages refuse to fetch from elsewhere (CSP connect-src 'self') before a
    # request leaves; the guard works too: a blank page's request to the outside is aborted
    # and recorded.
    fetch = "() => fetch('https://cdn.jsdelivr.net/x.js').then(() => 'reached', () => 'blocked')"
    assert page.evaluate(fetch) == "blocked"
    assert external_requests.urls == []
    blank = context.new_page()
    assert blank.evaluate(fetch) == "blocked"
    assert external_requests.urls == ["https://cdn.jsdelivr.net/x.js"]
    external_requests.urls.clear()

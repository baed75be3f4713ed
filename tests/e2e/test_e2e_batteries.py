"""The demo's batteries in a real browser (``demo/batteries.py``): preferences kept in
localStorage (restored on reload, shared by the browser's tabs, refused and reset when
tampered with), a global background import with progress and cancel, a live chart fed by a
periodic job, and every kind of action an event can return."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from .harness import EXPECT_TIMEOUT_MS, DemoServer

pytestmark = pytest.mark.e2e

OpenDemo = Callable[..., Page]

PREFS_KEY = "starmodel:preferences"
RESTORE_PATH = "/_starmodel/client/preferences/restore"
STATIC_SCRIPT = "/_starmodel/static/starmodel.js"
PREFS_DEFAULTS = {"name": "", "language": "en"}
TOASTS = "#starmodel-toasts .starmodel-toast"
IMPORT_COUNT = re.compile(r"^(\d+) / (\d+)$")
IMPORT_TIMEOUT_MS = 15_000
STORE_TIMEOUT_MS = 5_000


# --- helpers -----------------------------------------------------------------------------


def stored(page: Page, key: str = PREFS_KEY) -> Any:
    """What the page's localStorage holds under ``key`` (parsed), or ``None``."""
    text = page.evaluate("(key) => window.localStorage.getItem(key)", key)
    return None if text is None else json.loads(text)


def wait_stored(page: Page, expected: dict[str, Any], key: str = PREFS_KEY) -> None:
    """Until localStorage holds exactly ``expected`` under ``key``."""
    page.wait_for_function(
        """([key, expected]) => {
            const text = window.localStorage.getItem(key);
            if (text === null) return false;
            try { return JSON.stringify(JSON.parse(text)) === JSON.stringify(expected); }
            catch (_) { return false; }
        }""",
        arg=[key, expected],
        timeout=STORE_TIMEOUT_MS,
    )


def expect_preferences(page: Page, language: str, greeting: str) -> None:
    expect(page.locator("#prefs-language")).to_have_text(language)
    expect(page.locator("#prefs-greeting")).to_have_text(greeting)


def save_name(page: Page, name: str) -> None:
    page.fill("#prefs-name", name)
    page.click("#prefs-save")


def import_progress(page: Page) -> tuple[int, int]:
    """``(imported, total)`` as the page shows them."""
    match = IMPORT_COUNT.match(page.locator("#import-count").inner_text().strip())
    assert match, f"unexpected import count {page.locator('#import-count').inner_text()!r}"
    return int(match[1]), int(match[2])


def wait_imported_above(page: Page, floor: int, timeout_ms: float = IMPORT_TIMEOUT_MS) -> int:
    """Until the page shows more than ``floor`` rows imported; returns that count."""
    page.wait_for_function(
        """(floor) => {
            const m = /^(\\d+) \\/ \\d+$/.exec(document.querySelector("#import-count").textContent.trim());
            return m !== null && +m[1] > floor;
        }""",
        arg=floor,
        timeout=timeout_ms,
    )
    return import_progress(page)[0]


def post_event(page: Page, url: str) -> int:
    """POST an event URL from the page, as Datastar would (same origin, its header); returns
    the HTTP status."""
    return int(
        page.evaluate(
            """async (url) => {
                const answer = await fetch(url, {
                    method: "POST",
                    headers: {"Datastar-Request": "true", "Content-Type": "application/json"},
                    body: "{}",
                });
                await answer.text();
                return answer.status;
            }""",
            url,
        )
    )


def record_toasts(page: Page) -> None:
    """Keep the text of every toast that ever shows in ``window.__seenToasts`` (short-lived
    toasts may be gone before a polling assertion looks)."""
    page.evaluate(
        """() => {
            window.__seenToasts = [];
            const box = document.querySelector("#starmodel-toasts");
            const seen = (node) => {
                if (node.nodeType === 1 && node.classList.contains("starmodel-toast")) {
                    window.__seenToasts.push(node.textContent.trim());
                }
            };
            box.querySelectorAll(".starmodel-toast").forEach(seen);
            new MutationObserver((records) => {
                for (const record of records) record.addedNodes.forEach(seen);
            }).observe(box, {childList: true});
        }"""
    )


def wait_toasts_seen(page: Page, texts: list[str], timeout_ms: float = 10_000) -> None:
    page.wait_for_function(
        "(texts) => texts.every((t) => (window.__seenToasts || []).includes(t))",
        arg=texts,
        timeout=timeout_ms,
    )


def wait_chart(page: Page, condition: str, timeout_ms: float = EXPECT_TIMEOUT_MS) -> int:
    """Until ``condition(count, points)`` holds, for the count the chart shows and the number
    of points of its line; returns the count."""
    handle = page.wait_for_function(
        f"""() => {{
            const m = /^(\\d+) points$/.exec(document.querySelector("#chart-count").textContent);
            const line = (document.querySelector("#chart-line").getAttribute("points") || "").trim();
            const points = line ? line.split(/\\s+/).length : 0;
            return m !== null && ({condition})(+m[1], points) && {{count: +m[1]}};
        }}""",
        timeout=timeout_ms,
    )
    return int(handle.json_value()["count"])


# --- 1. preferences in localStorage --------------------------------------------------------


def test_preferences_survive_a_reload_and_follow_across_tabs(
    demo: OpenDemo, new_context: Callable[[], BrowserContext]
) -> None:
    context = new_context()
    first = demo(context)
    expect_preferences(first, "en", "Hello!")

    save_name(first, "Ada")
    first.click("#prefs-fr")
    expect_preferences(first, "fr", "Bonjour, Ada !")
    wait_stored(first, {"name": "Ada", "language": "fr"})

    # A reload renders the defaults server-side; the page restores what the browser kept.
    first.reload()
    expect_preferences(first, "fr", "Bonjour, Ada !")
    assert stored(first) == {"name": "Ada", "language": "fr"}

    # Another tab of the same browser shares localStorage.
    second = demo(context)
    expect_preferences(second, "fr", "Bonjour, Ada !")

    # A change in one tab reaches the other without a reload (the storage event).
    second.click("#prefs-de")
    expect_preferences(second, "de", "Hallo, Ada!")
    expect_preferences(first, "de", "Hallo, Ada!")
    # Both tabs keep the whole state: each one stores it, and neither undoes the other.
    wait_stored(first, {"name": "Ada", "language": "de"})
    first.wait_for_timeout(500)
    expect_preferences(first, "de", "Hallo, Ada!")
    expect_preferences(second, "de", "Hallo, Ada!")
    assert stored(first) == {"name": "Ada", "language": "de"}

    save_name(first, "Grace")
    expect_preferences(second, "de", "Hallo, Grace!")
    expect(first.locator(f"{TOASTS}[data-variant=error]")).to_have_count(0)
    expect(second.locator(f"{TOASTS}[data-variant=error]")).to_have_count(0)
    # the page's own light / dark mode is the theme picker's alone
    assert "dark" not in (first.locator("html").get_attribute("class") or "").split()


# --- 2. tampered localStorage --------------------------------------------------------------


@pytest.mark.parametrize(
    "tampered",
    [
        json.dumps({"name": 5}),
        json.dumps({"name": "Ada", "is_admin": True}),
        json.dumps({"language": "xx"}),
        json.dumps({"name": "x" * 41}),
        "{oops",
    ],
    ids=["wrong-type", "unknown-field", "not-a-choice", "too-long", "not-json"],
)
def test_tampered_preferences_are_refused_and_reset(
    demo_server: DemoServer, new_context: Callable[[], BrowserContext], tampered: str
) -> None:
    offset = demo_server.log_size()
    page = new_context().new_page()  # a fresh context: nothing kept yet
    # Tamper from a page of the app's origin that does not run the app's script (the demo
    # page would store its own state meanwhile), then load the demo.
    page.goto(demo_server.url + STATIC_SCRIPT)
    page.evaluate("([key, text]) => window.localStorage.setItem(key, text)", [PREFS_KEY, tampered])

    with page.expect_response(lambda r: r.url.endswith(RESTORE_PATH)) as answer:
        page.goto(demo_server.url + "/lab")
    assert answer.value.status == 422
    error = page.locator(f"{TOASTS}[data-variant=error]")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("invalid and has been reset")
    expect(error).to_be_visible()
    expect_preferences(page, "en", "Hello!")
    # The page stores the defaults in place of the refused data ...
    wait_stored(page, PREFS_DEFAULTS)

    # ... so the next load is clean,
    with page.expect_response(lambda r: r.url.endswith(RESTORE_PATH)) as answer:
        page.reload()
    assert answer.value.status == 200
    expect_preferences(page, "en", "Hello!")
    expect(page.locator(f"{TOASTS}[data-variant=error]")).to_have_count(0)

    # and the state is usable: a change works and is kept whole.
    save_name(page, "Ada")
    expect_preferences(page, "en", "Hello, Ada!")
    wait_stored(page, {"name": "Ada", "language": "en"})

    written = demo_server.log_since(offset)
    assert "Traceback" not in written, f"the server logged a traceback:\n{written}"


# --- 3. a global background import ---------------------------------------------------------


@pytest.fixture
def import_stopped_after(demo_server: DemoServer) -> Iterator[None]:
    """The import is global on the shared server: whatever happens in the test, none is left
    running for the tests that follow."""
    yield
    cancel = urllib.request.Request(
        demo_server.url + "/import_job/start/cancel",
        data=b"{}",
        method="POST",
        headers={"Datastar-Request": "true", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(cancel, timeout=5) as answer:
        assert answer.status < 300


@pytest.mark.usefixtures("import_stopped_after")
def test_background_import_runs_on_is_shared_and_can_be_cancelled(
    demo: OpenDemo, new_context: Callable[[], BrowserContext]
) -> None:
    other = demo()  # another browser session, watching from the start
    context_a = new_context()
    starter = demo(context_a)
    expect(starter.locator("#import-status")).not_to_have_text("importing")

    starter.click("#import-start")
    expect(starter.locator("#import-status")).to_have_text("importing")
    expect(starter.locator(f"{TOASTS}[data-variant=info]")).to_contain_text(["Import of 40 rows started"])
    wait_imported_above(starter, 0)
    starter.close()  # the import is not tied to the tab that started it

    reopened = demo(context_a)
    expect(reopened.locator("#import-status")).to_have_text("importing")
    seen, total = import_progress(reopened)
    assert seen > 0 and total == 40, f"{seen} / {total}"
    seen = wait_imported_above(reopened, seen)  # it goes on, live

    # The other session sees the same import, at the same point.
    expect(other.locator("#import-status")).to_have_text("importing")
    wait_imported_above(other, seen)
    expect(other.locator("#import-progress")).to_have_attribute("value", re.compile(r"^[1-9]\d?$"))

    other.click("#import-cancel")
    for page in (reopened, other):
        expect(page.locator("#import-status")).to_have_text("cancelled")
    stopped = import_progress(other)[0]
    assert 0 < stopped < 40
    expect(other.locator(f"{TOASTS}[data-variant=warning]")).to_contain_text(
        [f"Import cancelled after {stopped} rows"]
    )
    # Three rows' time later neither page moved on.
    other.wait_for_timeout(750)
    for page in (reopened, other):
        expect(page.locator("#import-count")).to_have_text(f"{stopped} / 40")
        expect(page.locator("#import-status")).to_have_text("cancelled")

    # A short import (8 rows, 2 s) runs to the end in both sessions.
    assert post_event(reopened, "/import_job/start?rows=8") < 300
    for page in (reopened, other):
        expect(page.locator("#import-status")).to_have_text("done", timeout=IMPORT_TIMEOUT_MS)
        expect(page.locator("#import-count")).to_have_text("8 / 8")
        expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(reopened.locator(f"{TOASTS}[data-variant=success]")).to_contain_text(["Imported 8 rows"])


# --- 4. a live chart ------------------------------------------------------------------------


def test_chart_grows_from_the_periodic_job(demo: OpenDemo) -> None:
    page = demo()
    # The series keeps 30 points; clear it so that growth shows however long the app has run.
    page.click("#chart-clear")
    start = wait_chart(page, "(count, points) => count <= 1 && points === count")
    assert start <= 1

    # A point a second: three more within a few seconds, in the count and in the line alike.
    grown = wait_chart(page, f"(count, points) => count >= {start + 3} && points === count", 8_000)
    assert grown >= start + 3
    points = (page.locator("#chart-line").get_attribute("points") or "").split()
    assert len(points) == grown
    for point in points:
        x, y = (float(v) for v in point.split(","))
        assert 0 <= x <= 300 and 0 <= y <= 80, point


# --- 5. every action ------------------------------------------------------------------------


def test_every_action_type_reaches_the_browser(demo: OpenDemo) -> None:
    page = demo()
    for variant in ("info", "success", "warning", "error"):
        page.click(f"#showcase-{variant}")
        toast = page.locator(f"{TOASTS}[data-variant={variant}]")
        expect(toast).to_have_text(f"{'An' if variant in ('info', 'error') else 'A'} {variant} toast")
        expect(toast).to_be_visible()

    # The alert blocks the page until it is answered; the test accepts it.
    with page.expect_event("dialog") as caught:
        page.click("#showcase-alert")
    dialog: Dialog = caught.value
    assert dialog.type == "alert"
    assert dialog.message == "An alert from the server"
    dialog.accept()

    page.click("#showcase-run-script")
    expect(page.locator("#showcase-script")).to_have_text("Script ran")

    page.click("#showcase-patch")
    expect(page.locator("#showcase-note")).to_have_text("Patched by the server")

    record_toasts(page)
    page.click("#showcase-countdown")
    wait_toasts_seen(page, ["Countdown: 3", "Countdown: 2", "Countdown: 1", "Lift-off"])
    assert page.evaluate("() => window.__seenToasts.filter((t) => t.startsWith('Countdown'))") == [
        "Countdown: 3",
        "Countdown: 2",
        "Countdown: 1",
    ]

    page.click("#showcase-redirect")
    page.wait_for_url(re.compile(r"/actions\?from=redirect\b"))
    expect(page.locator("#redirected")).to_have_text("You were redirected here by the server.")
    expect(page.locator("#showcase-note")).to_have_text("")  # a new page: Datastar runs there too

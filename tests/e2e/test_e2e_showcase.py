"""The showcase in Chromium: every page in light mode, dark mode and a phone-sized window with no
console error, no failed request and no request off the host; the code panels show the source
of what runs; the team board is live between two browsers; the screenshot script works."""

from __future__ import annotations

import base64
import importlib.util
import inspect
import json
import re
import sqlite3
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, expect

from .harness import ACTION_TIMEOUT_MS, REPO, DemoServer, ExternalRequests, is_local
from .shop import ADMIN_PASSWORD, sign_in_as_admin

if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))
from demo.board import nickname
from demo.layout import NAV
from demo.state import Counter

pytestmark = pytest.mark.e2e

DEMO_DATABASE = REPO / "demo" / "demo.db"  # the shared server's (it gets no DATABASE_URL)
SHOWCASE_PAGES = [path for path, _ in NAV] + ["/lab"]
GENERATED_PAGES = ["/products", "/products/new", "/admin", "/auth/login"]
MODES = {
    "light": ({"width": 1280, "height": 900}, "light"),
    "dark": ({"width": 1280, "height": 900}, "dark"),
    "phone": ({"width": 375, "height": 740}, "light"),
}
LIVE_PATH = "/_starmodel/live"
MAX_PICTURE_BYTES = 150 * 1024
# the shared test server's board holds every ticket earlier tests added, so its picture grows
MAX_BOARD_PICTURE_BYTES = 300 * 1024


@pytest.fixture
def themed_context(
    browser: Browser, external_requests: ExternalRequests
) -> Iterator[Callable[[str], BrowserContext]]:
    """``themed_context(mode)``: a fresh context in ``light``, ``dark`` (the system's colour
    scheme, which the theme picker follows by default) or ``phone`` (375x740), whose requests
    off 127.0.0.1 are aborted and recorded."""
    made: list[BrowserContext] = []

    def make(mode: str) -> BrowserContext:
        viewport, scheme = MODES[mode]
        context = browser.new_context(viewport=viewport, color_scheme=scheme)  # type: ignore[arg-type]
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.route(lambda url: not is_local(url), lambda route: route.abort("internetdisconnected"))
        context.on("request", lambda r: None if is_local(r.url) else external_requests.urls.append(r.url))
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def watch(page: Page) -> list[str]:
    """What goes wrong on ``page``: console errors, page errors, failed requests, 4xx/5xx."""
    bad: list[str] = []

    def failed(request: Request) -> None:
        if LIVE_PATH not in request.url:  # a live stream is cut when its page is left
            bad.append(f"failed: {request.url} {request.failure}")

    def answered(response: Response) -> None:
        if response.status >= 400:
            bad.append(f"{response.status} {response.url}")

    page.on("console", lambda m: m.type == "error" and bad.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: bad.append(f"page error: {e}"))
    page.on("requestfailed", failed)
    page.on("response", answered)
    return bad


def open_live(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    """A tab on ``url`` once its live stream is open (Datastar and the assets have loaded)."""
    page = context.new_page()
    bad = watch(page)
    with page.expect_request(lambda r: LIVE_PATH in r.url):
        page.goto(url, wait_until="load")
    return page, bad


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("path", SHOWCASE_PAGES + GENERATED_PAGES)
def test_every_page_renders_cleanly_in_light_dark_and_phone(
    demo_server: DemoServer, themed_context: Callable[[str], BrowserContext], path: str, mode: str
) -> None:
    page, bad = open_live(themed_context(mode), demo_server.url + path)
    html = page.locator("html")
    if mode == "dark":
        expect(html).to_have_class(re.compile(r"\bdark\b"))
    else:
        expect(html).not_to_have_class(re.compile(r"\bdark\b"))
    expect(page.locator("[data-starmodel-theme-picker]")).to_have_count(1)  # one theme picker only
    if path in SHOWCASE_PAGES:
        nav = page.get_by_role("navigation", name="Showcase pages")
        expect(nav).to_be_visible()
        current = nav.locator("a[aria-current=page]")
        if path in dict(NAV):
            expect(current).to_have_attribute("href", path)
        else:  # the lab is reached from the home page, not the header
            expect(current).to_have_count(0)
        expect(page.locator("h1").first).not_to_be_empty()
    else:
        expect(page.locator("[data-starmodel-theme-picker]")).to_be_visible()
    page.wait_for_timeout(300)  # the live stream's first patches
    if mode == "phone":
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide in a 375px window"
    assert bad == [], bad


def test_code_panels_show_the_source_that_runs(
    demo_server: DemoServer, themed_context: Callable[[str], BrowserContext]
) -> None:
    page, bad = open_live(themed_context("light"), demo_server.url + "/state")
    shown = page.locator("pre[data-source=Counter]").inner_text()
    assert shown.rstrip() == textwrap.dedent(inspect.getsource(Counter)).rstrip()
    expect(page.locator("pre[data-source=Counter] .tk-k").first).to_have_text("class")
    assert bad == [], bad
    # every feature page puts code beside its widget
    context = themed_context("light")
    for path in SHOWCASE_PAGES[1:-1]:
        other, bad = open_live(context, demo_server.url + path)
        expect(other.locator("pre[data-source]").first).to_contain_text("def ")
        assert bad == [], (path, bad)
        other.close()  # each tab holds a live stream: Chromium opens at most 6 per host


@pytest.fixture
def marker(demo_server: DemoServer) -> Iterator[str]:
    """A prefix for the tickets of one test; they are deleted when it ends."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    yield prefix
    if DEMO_DATABASE.is_file():
        with sqlite3.connect(DEMO_DATABASE, timeout=10) as db:
            db.execute("DELETE FROM ticket WHERE title LIKE ?", (f"{prefix}%",))
        db.close()


def session_id(context: BrowserContext) -> str:
    """The session id inside the context's signed session cookie."""
    cookie = next(c["value"] for c in context.cookies() if c["name"] == "starmodel_session")
    payload = cookie.split(".")[0]
    [value] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))).values()
    return str(value)


def test_the_board_is_live_between_two_browsers(
    demo_server: DemoServer, new_context: Callable[[], BrowserContext], marker: str
) -> None:
    alice, alice_bad = open_live(new_context(), demo_server.url + "/board")
    bob, bob_bad = open_live(new_context(), demo_server.url + "/board")
    alice_name, bob_name = (page.locator("#board-me").inner_text() for page in (alice, bob))
    # each browser is named after its session
    assert alice_name == nickname(session_id(alice.context))
    assert bob_name == nickname(session_id(bob.context))

    title = f"{marker} gift cards"
    alice.fill("#ticket-new", title)
    alice.press("#ticket-new", "Enter")
    theirs = bob.locator("[data-testid=ticket]", has_text=title)
    expect(theirs).to_have_count(1)
    expect(theirs).to_have_attribute("data-lane", "todo")
    expect(alice.locator("#ticket-new")).to_have_value("")
    expect(bob.locator("#board-feed")).to_contain_text(f"{alice_name} added “{title}”")

    theirs.get_by_test_id("move-doing").click()
    mine = alice.locator("[data-testid=ticket]", has_text=title)
    expect(mine).to_have_attribute("data-lane", "doing")
    expect(mine.get_by_test_id("move-doing")).to_be_hidden()  # the lane it is in is no move
    moved = f"{bob_name} moved “{title}” to In progress"
    expect(alice.locator("#board-feed li").first).to_contain_text(moved)
    initials = "".join(word[0] for word in bob_name.split())
    expect(alice.locator("#board-people [data-testid=avatar]").first).to_have_text(initials)
    expect(alice.locator("#board-people [data-testid=avatar]").first).to_have_attribute("title", bob_name)

    mine.get_by_test_id("move-done").click()
    expect(theirs).to_have_attribute("data-lane", "done")
    # the pulse's job counts the lanes every two seconds: both boards get the new count
    with sqlite3.connect(DEMO_DATABASE, timeout=10) as db:
        done = db.execute("SELECT count(*) FROM ticket WHERE lane = 'done'").fetchone()[0]
    db.close()
    for page in (alice, bob):
        expect(page.locator("#lane-count-done")).to_have_text(str(done))

    reloaded = bob.context.new_page()
    reloaded.goto(demo_server.url + "/board")
    expect(reloaded.locator("[data-testid=ticket]", has_text=title)).to_have_attribute("data-lane", "done")
    assert alice_bad == [] and bob_bad == []


def test_a_refused_ticket_adds_nothing(
    demo_server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    page, _ = open_live(new_context(), demo_server.url + "/board")
    before = page.locator("[data-testid=ticket]").count()
    page.fill("#ticket-new", " x ")
    page.click("#ticket-add")
    expect(page.locator("#ticket-error")).to_contain_text("at least 2 characters")
    expect(page.locator("[data-testid=ticket]")).to_have_count(before)


def load_screenshots_script() -> ModuleType:
    path = REPO / "scripts" / "screenshots.py"
    spec = importlib.util.spec_from_file_location("showcase_screenshots", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_screenshot_script_shoots_every_picture(
    demo_server: DemoServer, browser: Browser, tmp_path: Path
) -> None:
    shots = load_screenshots_script()
    written = shots.take_screenshots(browser, demo_server.url, tmp_path, ADMIN_PASSWORD)
    assert sorted(written) == sorted(shots.SHOTS)
    sizes = {}
    for name, path in written.items():
        data = path.read_bytes()
        assert data.startswith(shots.PNG_SIGNATURE), name
        limit = MAX_BOARD_PICTURE_BYTES if name == "live-board" else MAX_PICTURE_BYTES
        assert len(data) < limit, f"{name}.png is {len(data)} bytes"
        sizes[name] = shots.png_size(data)
    assert sizes["home"] == (1280, 720) and sizes["admin"] == (1280, 800)
    assert sizes["dark-mode"] == (1280, 800) and sizes["phone"] == (375, 740)
    assert sizes["live-board"][0] == 1600
    # the committed pictures are the script's: same names, PNGs of the same sizes
    for name in shots.SHOTS:
        committed = REPO / "docs" / "images" / f"{name}.png"
        assert committed.is_file(), f"docs/images/{name}.png is missing: run scripts/screenshots.py"
        assert shots.png_size(committed.read_bytes())[0] == sizes[name][0], name


def test_the_admin_picture_needs_the_staff_account(
    demo_server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    """What the admin picture shows is what staff see: the product list of the admin."""
    context = new_context()
    sign_in_as_admin(context, demo_server.url)
    page, bad = open_live(context, demo_server.url + "/admin/product")
    expect(page.get_by_text("Claw hammer")).to_be_visible()
    assert bad == [], bad

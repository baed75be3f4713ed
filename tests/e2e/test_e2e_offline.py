"""The demo fully offline: every request goes to the app itself (assets from ``starmodel
assets``, Tailwind compiled into ``tailwind/app.css``), the styles really apply, and the theme
picker switches the MonsterUI theme colour and dark mode, both kept across a reload."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from monsterui.all import Theme
from playwright.sync_api import BrowserContext, Page, Request, Response, expect

from .harness import DemoServer, ExternalRequests, asset_name, open_demo

pytestmark = pytest.mark.e2e

OpenDemo = Callable[..., Page]
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")


@pytest.fixture(autouse=True)
def _compiled_css(assets_dir: Path) -> None:
    if not (assets_dir / "tailwind" / "app.css").is_file():
        pytest.fail(f"no compiled CSS in {assets_dir}; build it with "
                    f"`starmodel assets --css-only --dir {assets_dir}`", pytrace=False)


def root_style(page: Page, name: str) -> str:
    return str(page.evaluate(f"getComputedStyle(document.documentElement).{name}"))


def root_var(page: Page, name: str) -> str:
    value = page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('{name}')")
    return str(value).strip()


def style_of(page: Page, selector: str, prop: str) -> str:
    return str(page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))


def test_every_request_stays_local_and_the_styles_apply(
    demo_server: DemoServer,
    new_context: Callable[[], BrowserContext],
    external_requests: ExternalRequests,
) -> None:
    page = new_context().new_page()
    requests: list[Request] = []
    failed: list[str] = []
    statuses: dict[str, int] = {}
    page.on("request", lambda r: requests.append(r))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))

    def on_response(response: Response) -> None:
        statuses[response.url] = response.status

    page.on("response", on_response)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    page.goto(demo_server.url + "/lab", wait_until="load")
    expect(page.locator("#counter-value")).to_have_text(re.compile(r"^-?\d+$"))  # Datastar ran

    assert requests, "the page made no request"
    for request in requests:
        assert request.url.startswith(demo_server.url + "/") or request.url.startswith("data:"), request.url
    assets = [r for r in requests if r.resource_type in ("stylesheet", "script")]
    names = {asset_name(r.url) for r in assets}
    assert {"datastar.js", "tailwind/app.css", "franken-ui/core.min.css", "daisyui/full.css"} <= names, names
    assert "tailwind/tailwind.js" not in names  # the compiled CSS replaces the in-browser build
    for request in assets:
        assert statuses.get(request.url) == 200, (request.url, statuses.get(request.url))
    assert failed == []
    assert errors == []
    assert external_requests.urls == []

    # franken-ui's theme colours and Tailwind's utilities both apply.
    assert style_of(page, "#task-run", "backgroundColor") not in TRANSPARENT
    assert style_of(page, "#counter-value", "fontSize") == "36px"  # text-4xl
    assert style_of(page, "#counter-value", "fontWeight") == "700"  # font-bold
    # MonsterUI's Grid: a class it builds at run time (grid-cols-1: "none" without it), gap-4
    display, columns, gap = page.eval_on_selector(
        "#counter-value",
        "e => { const s = getComputedStyle(e.closest('.grid')); "
        "return [s.display, s.gridTemplateColumns, s.rowGap]; }",
    )
    assert (display, gap) == ("grid", "16px")
    assert re.fullmatch(r"[\d.]+px", columns), columns


def test_theme_picker_switches_colour_and_dark_mode_and_both_survive_a_reload(
    new_context: Callable[[], BrowserContext], demo_server: DemoServer
) -> None:
    context = new_context()
    page = open_demo(context, demo_server.url)
    picker = page.locator("[data-starmodel-theme-picker]")
    html = page.locator("html")
    expect(html).to_have_class(re.compile(r"\buk-theme-blue\b"))  # STARMODEL_THEME's default
    expect(picker.locator("select")).to_have_value("uk-theme-blue")
    expect(picker.locator("button[data-mode=system]")).to_have_attribute("aria-pressed", "true")
    blue, light_background = root_var(page, "--primary"), root_style(page, "backgroundColor")
    button_blue = style_of(page, "#task-run", "backgroundColor")

    picker.locator("select").select_option("uk-theme-rose")
    expect(html).to_have_class(re.compile(r"\buk-theme-rose\b"))
    expect(html).not_to_have_class(re.compile(r"\buk-theme-blue\b"))
    rose = root_var(page, "--primary")
    assert rose and rose != blue
    assert style_of(page, "#task-run", "backgroundColor") != button_blue

    picker.locator("button[data-mode=dark]").click()
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    expect(picker.locator("button[data-mode=dark]")).to_have_attribute("aria-pressed", "true")
    dark_background = root_style(page, "backgroundColor")
    assert dark_background != light_background
    dark_rose = root_var(page, "--primary")

    page.reload()
    expect(page.locator("#counter-value")).to_have_text(re.compile(r"^-?\d+$"))
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    expect(html).to_have_class(re.compile(r"\buk-theme-rose\b"))
    expect(picker.locator("select")).to_have_value("uk-theme-rose")
    expect(picker.locator("button[data-mode=dark]")).to_have_attribute("aria-pressed", "true")
    assert root_var(page, "--primary") == dark_rose
    assert root_style(page, "backgroundColor") == dark_background
    stored = page.evaluate("JSON.parse(localStorage.getItem('__FRANKEN__'))")
    assert stored == {"theme": "uk-theme-rose", "mode": "dark"}

    # "system" forgets the mode, and then follows the operating system's preference.
    picker.locator("button[data-mode=system]").click()
    expect(html).not_to_have_class(re.compile(r"\bdark\b"))  # Chromium's default: light
    assert page.evaluate("JSON.parse(localStorage.getItem('__FRANKEN__'))") == {"theme": "uk-theme-rose"}
    page.emulate_media(color_scheme="dark")
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    page.reload()
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    expect(picker.locator("button[data-mode=system]")).to_have_attribute("aria-pressed", "true")

    # A choice made in one tab reaches the others.
    other = open_demo(context, demo_server.url)
    picker.locator("select").select_option("uk-theme-green")
    expect(other.locator("html")).to_have_class(re.compile(r"\buk-theme-green\b"))
    expect(other.locator("[data-starmodel-theme-picker] select")).to_have_value("uk-theme-green")


def test_every_monsterui_theme_colours_the_page_in_light_and_dark_mode(demo: OpenDemo) -> None:
    page = demo()
    picker = page.locator("[data-starmodel-theme-picker]")
    seen: dict[str, set[str]] = {"light": set(), "dark": set()}
    for mode in ("light", "dark"):
        picker.locator(f"button[data-mode={mode}]").click()
        for theme in Theme:
            picker.locator("select").select_option(f"uk-theme-{theme.name}")
            expect(page.locator("html")).to_have_class(re.compile(rf"\buk-theme-{theme.name}\b"))
            primary, background = root_var(page, "--primary"), root_var(page, "--background")
            assert primary and background, (mode, theme.name)
            assert style_of(page, "#task-run", "backgroundColor") not in TRANSPARENT, (mode, theme.name)
            seen[mode].add(primary)
    assert len(seen["light"]) == len(Theme)  # every theme has a colour of its own
    assert seen["light"] != seen["dark"]


@pytest.mark.parametrize("path", ["/products", "/products/new", "/admin", "/auth/register"])
def test_generated_and_account_pages_stay_local_too(
    demo_server: DemoServer,
    new_context: Callable[[], BrowserContext],
    external_requests: ExternalRequests,
    path: str,
) -> None:
    """The generated product pages, the admin (its sign-in page, for a visitor) and the account
    pages load everything from the app, with no failed request and no console error."""
    page = new_context().new_page()
    requests: list[Request] = []
    bad: list[str] = []
    page.on("request", lambda r: requests.append(r))
    page.on("requestfailed", lambda r: bad.append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and bad.append(f"{r.url} {r.status}"))
    page.on("pageerror", lambda e: bad.append(str(e)))
    page.on("console", lambda m: m.type == "error" and bad.append(m.text))
    # the page opens its live stream once Datastar and the page's assets are loaded
    with page.expect_request(lambda r: "/_starmodel/live" in r.url):
        page.goto(demo_server.url + path, wait_until="load")
    expect(page.locator("[data-starmodel-theme-picker]").first).to_be_visible()
    assert requests and all(r.url.startswith(demo_server.url + "/") or r.url.startswith("data:")
                            for r in requests), [r.url for r in requests]
    names = {asset_name(r.url) for r in requests if r.resource_type in ("stylesheet", "script")}
    assert {"datastar.js", "tailwind/app.css", "franken-ui/core.min.css"} <= names, names
    assert bad == []
    assert external_requests.urls == []
    button = page.locator("button[type=submit]").first
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") not in TRANSPARENT or \
        button.evaluate("e => getComputedStyle(e).borderTopWidth") != "0px"

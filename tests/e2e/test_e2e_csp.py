"""The default Content-Security-Policy in a real browser: the demo's pages, its generated CRUD
list and admin pages all work under it (events, every kind of action, a background event,
live updates from another session, the theme picker) and Chromium reports no violation."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import APIResponse, BrowserContext, ConsoleMessage, Dialog, Page, Response, expect

from .harness import LAB, DemoServer, open_demo
from .shop import forget, new_marker, no_error_toast, open_live, sign_in_as_admin, toasts

pytestmark = pytest.mark.e2e

NewContext = Callable[[], BrowserContext]

# Runs before any script of each document (Playwright injects it; the page's policy does not
# apply to it): every violation the document sees is kept for the test to read.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}: ${e.sample}`);
});
"""


class Violations:
    """What Chromium said about the policy, on the console and through violation events."""

    def __init__(self) -> None:
        self.console: list[str] = []

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.add_init_script(WATCH_VIOLATIONS)
        context.on("page", self._listen)
        return context

    def _listen(self, page: Page) -> None:
        def record(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
                self.console.append(message.text)

        page.on("console", record)

    def assert_none(self, *pages: Page) -> None:
        events = [v for page in pages for v in page.evaluate("() => window.__cspViolations")]
        assert not self.console and not events, f"CSP violations: {self.console + events}"


@pytest.fixture
def violations() -> Violations:
    return Violations()


@pytest.fixture
def marker(demo_server: DemoServer) -> Iterator[str]:
    prefix = new_marker()
    yield prefix
    forget(prefix)


def page_nonce(response: Response | APIResponse | None) -> str:
    assert response is not None
    policy = response.headers.get("content-security-policy", "")
    assert "'unsafe-eval'" in policy and "frame-ancestors 'self'" in policy, policy
    found = re.search(r"'nonce-([A-Za-z0-9_-]+)'", policy)
    assert found, f"no nonce in the policy: {policy}"
    return found.group(1)


def test_demo_pages_run_under_the_default_policy_without_violations(
    demo_server: DemoServer, new_context: NewContext, violations: Violations
) -> None:
    url = demo_server.url
    mine, theirs = violations.watch(new_context()), violations.watch(new_context())
    page = mine.new_page()
    nonce = page_nonce(page.goto(url + LAB))
    expect(page.locator("#counter-value")).to_have_text(re.compile(r"^-?\d+$"))
    # every script of the page carries this page's nonce; another page gets another one
    assert set(page.evaluate("() => [...document.scripts].map((s) => s.nonce)")) == {nonce}
    assert page_nonce(mine.request.get(url + LAB)) != nonce

    # events and their answers
    before = int(page.locator("#counter-value").inner_text())
    page.click("#counter-inc5")
    expect(page.locator("#counter-value")).to_have_text(str(before + 5))
    page.fill("#counter-amount", "3")
    page.click("#counter-add")
    expect(page.locator("#counter-value")).to_have_text(str(before + 8))

    # a live update made by another session reaches this page
    other = open_demo(theirs, url)
    shared = int(page.locator("#shared-value").inner_text())
    other.click("#shared-inc")
    expect(page.locator("#shared-value")).to_have_text(str(shared + 1))

    # every kind of action: toast, alert, script (a <script> Datastar adds), patched signals
    page.click("#showcase-success")
    expect(toasts(page, "success").last).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_event("dialog") as caught:
        page.click("#showcase-alert")
    assert isinstance(caught.value, Dialog)
    page.click("#showcase-run-script")
    expect(page.locator("#showcase-script")).to_have_text("Script ran")
    page.click("#showcase-patch")
    expect(page.locator("#showcase-note")).to_have_text("Patched by the server")
    page.click("#showcase-countdown")  # a background event: its toasts come over the live stream
    expect(page.locator("#starmodel-toasts")).to_contain_text("Lift-off", timeout=10_000)

    # the theme picker (its listeners are no inline handlers)
    picker = page.locator("[data-starmodel-theme-picker]")
    picker.locator("button[data-mode=dark]").click()
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    picker.locator("button[data-mode=system]").click()

    # a redirect action loads a new page, under its own nonce
    page.click("#showcase-redirect")
    page.wait_for_url(re.compile(r"/actions\?from=redirect\b"))
    expect(page.locator("#redirected")).to_have_text("You were redirected here by the server.")
    expect(page.locator("#showcase-note")).to_have_text("")  # Datastar runs on the new page too
    violations.assert_none(page, other)


def test_generated_crud_and_admin_pages_run_without_violations(
    demo_server: DemoServer, new_context: NewContext, violations: Violations, marker: str
) -> None:
    url = demo_server.url
    staff = violations.watch(new_context())
    sign_in_as_admin(staff, url)
    watcher = open_live(violations.watch(new_context()), f"{url}/products?q={marker}")
    expect(watcher.get_by_test_id("sm-empty")).to_be_visible()

    # the generated form: checked while typing, then saved
    form = staff.new_page()
    page_nonce(form.goto(f"{url}/products/new"))
    name_error = form.locator("#sm-product-new-name-error")
    form.locator("#sm-product-new-name").fill("x")
    expect(name_error).to_have_text("String should have at least 2 characters")
    form.locator("#sm-product-new-name").fill(f"{marker} kettle")
    form.locator("#sm-product-new-price").fill("12.00")
    form.locator("#sm-product-new-stock").fill("2")
    form.get_by_test_id("sm-submit").click()
    form.wait_for_url(re.compile(r"/products/(\d+)$"))
    product_id = int(form.url.rsplit("/", 1)[1])
    expect(watcher.get_by_test_id("sm-row")).to_have_count(1)  # arrived live in another session
    expect(watcher.get_by_test_id("sm-row")).to_contain_text(f"{marker} kettle")

    # the admin: an event run from a record's page, and the overview
    admin = open_live(staff, f"{url}/admin/product/{product_id}")
    admin.locator("#sm-event-product-adjust_stock-delta").fill("3")
    with admin.expect_response(lambda r: "/product/adjust_stock" in r.url) as answer:
        admin.get_by_test_id("event-adjust_stock").click()
    assert answer.value.status == 200
    expect(admin.get_by_test_id("value-stock")).to_have_text("5")
    no_error_toast(admin)
    overview = staff.new_page()
    page_nonce(overview.goto(f"{url}/admin"))
    expect(overview.get_by_test_id("admin-entity").first).to_be_visible()
    violations.assert_none(watcher, form, admin, overview)

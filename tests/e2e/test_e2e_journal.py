"""The event journal in Chromium, on the demo: the whiteboard's History panel follows changes
made in another browser, its Undo button puts the latest change back in every browser; the
admin's History page of the whiteboard lists the change and its Undo button reverses it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from .harness import DemoServer
from .shop import no_error_toast, open_live, sign_in_as_admin

pytestmark = pytest.mark.e2e

NewContext = Callable[[], BrowserContext]


def test_history_panel_and_undo_between_two_browsers(
    demo_server: DemoServer, new_context: NewContext
) -> None:
    alice = open_live(new_context(), demo_server.url + "/journal")
    bob = open_live(new_context(), demo_server.url + "/journal")
    before = alice.locator("#whiteboard-headline").inner_text()
    headline = f"e2e {uuid.uuid4().hex[:8]}"

    alice.locator("#whiteboard-text").fill(headline)
    alice.locator("#whiteboard-write").click()
    for page in (alice, bob):  # bob's panel asks again when the live stream patches the board
        expect(page.locator("#whiteboard-headline")).to_have_text(headline)
        expect(page.get_by_test_id("journal-entry").first).to_contain_text(headline)
        expect(page.get_by_test_id("journal-entry").first).to_contain_text("write")

    bob.locator("#journal-undo").click()
    expect(bob.get_by_test_id("journal-note")).to_contain_text("Undone: write")
    for page in (alice, bob):
        expect(page.locator("#whiteboard-headline")).to_have_text(before)
        expect(page.get_by_test_id("journal-entry").first).to_contain_text("undo")
    no_error_toast(alice)


def test_the_admin_history_page_undoes_a_change(demo_server: DemoServer, new_context: NewContext) -> None:
    viewer = open_live(new_context(), demo_server.url + "/journal")
    color = "emerald" if viewer.locator("#whiteboard-color").inner_text() != "emerald" else "sky"
    before = viewer.locator("#whiteboard-color").inner_text()
    viewer.locator(f"#whiteboard-paint-{color}").click()
    expect(viewer.locator("#whiteboard-color")).to_have_text(color)

    staff = new_context()
    sign_in_as_admin(staff, demo_server.url)
    admin = staff.new_page()
    admin.goto(f"{demo_server.url}/admin/whiteboard")
    admin.get_by_test_id("sm-history").click()
    admin.wait_for_url(f"{demo_server.url}/admin/whiteboard/global/history")
    latest = admin.get_by_test_id("sm-history-entry").first
    expect(latest).to_contain_text("paint")
    expect(latest).to_contain_text(color)
    latest.get_by_role("button", name="Undo").click()

    # the page is drawn again: the undo on top, the change marked undone
    expect(admin.get_by_test_id("sm-history-entry").first).to_contain_text("undo")
    expect(admin.get_by_test_id("sm-history-entry").nth(1)).to_contain_text("undone by")
    expect(viewer.locator("#whiteboard-color")).to_have_text(before)  # live in the other browser
    no_error_toast(admin)

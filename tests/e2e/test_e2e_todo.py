"""The demo's todo list (a SQL entity) in a real browser: rows added, ticked and deleted in one
session show up live in another, refused titles add nothing, and a reload shows what was saved.

The shared demo server keeps its todos in ``demo/demo.db``, which outlives a test run (and may
hold a developer's own todos), so every test works with titles of its own and deletes them
from the database when it ends.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from .harness import REPO

pytestmark = pytest.mark.e2e

DEMO_DATABASE = REPO / "demo" / "demo.db"  # the demo's default (the server gets no DATABASE_URL)
SCREENSHOT = "/tmp/e2e-todo.png"
ROW_ID = re.compile(r"^todo-\d+$")
LINE_THROUGH = re.compile(r"(^|\s)line-through(\s|$)")

OpenDemo = Callable[..., Page]


@pytest.fixture
def marker(demo_server: object, request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix for the titles of one test; its todos are deleted when the test ends."""
    prefix = f"e2e-{uuid.uuid4().hex[:10]}"
    yield prefix
    if DEMO_DATABASE.is_file():
        with sqlite3.connect(DEMO_DATABASE, timeout=10) as db:
            db.execute("DELETE FROM todo WHERE title LIKE ?", (f"{prefix}%",))
        db.close()


def rows(page: Page) -> Locator:
    return page.locator("#todo-list > li")


def row(page: Page, title: str) -> Locator:
    """The row showing exactly ``title``."""
    exact = re.compile(rf"^{re.escape(title)}$")
    return rows(page).filter(has=page.locator(".todo-title", has_text=exact))


def add(page: Page, title: str, *, enter: bool = False) -> Locator:
    """Type ``title`` and add it (with the button, or Enter); returns its row once it shows."""
    page.fill("#todo-new", title)
    if enter:
        page.press("#todo-new", "Enter")
    else:
        page.click("#todo-add")
    added = row(page, title)
    expect(added).to_have_count(1)
    expect(added).to_have_id(ROW_ID)
    expect(page.locator("#todo-new")).to_have_value("")
    return added


def expect_done(todo: Locator, done: bool) -> None:
    box, title = todo.get_by_test_id("toggle"), todo.locator(".todo-title")
    if done:
        expect(box).to_be_checked()
        expect(title).to_have_class(LINE_THROUGH)
    else:
        expect(box).not_to_be_checked()
        expect(title).not_to_have_class(LINE_THROUGH)


def no_error_toast(page: Page) -> None:
    expect(page.locator("#starmodel-toasts .starmodel-toast[data-variant=error]")).to_have_count(0)


def test_todo_added_in_one_session_appears_live_in_another(demo: OpenDemo, marker: str) -> None:
    alice, bob = demo(), demo()
    first, second = f"{marker} buy milk", f"{marker} walk the dog"

    mine = add(alice, first)
    theirs = row(bob, first)
    expect(theirs).to_have_count(1)  # no reload: the live stream brought it
    expect(theirs).to_have_id(mine.get_attribute("id") or "")
    expect_done(theirs, False)

    # The other way round, with Enter in the box instead of the button.
    add(bob, second, enter=True)
    expect(row(alice, second)).to_have_count(1)
    # New rows go to the end of the list, in both tabs.
    for page in (alice, bob):
        expect(rows(page).last.locator(".todo-title")).to_have_text(second)
        expect(row(page, first)).to_have_count(1)
        no_error_toast(page)


def test_toggling_in_one_session_updates_the_other(demo: OpenDemo, marker: str) -> None:
    alice, bob = demo(), demo()
    title = f"{marker} water the plants"
    add(alice, title)
    expect(row(bob, title)).to_have_count(1)

    row(bob, title).get_by_test_id("toggle").click()
    expect_done(row(bob, title), True)
    expect_done(row(alice, title), True)

    row(alice, title).get_by_test_id("toggle").click()
    expect_done(row(alice, title), False)
    expect_done(row(bob, title), False)
    alice.screenshot(path=SCREENSHOT, full_page=True)


def test_deleted_todo_disappears_from_both_sessions(demo: OpenDemo, marker: str) -> None:
    alice, bob = demo(), demo()
    doomed, kept = f"{marker} doomed", f"{marker} kept"
    add(alice, doomed)
    add(alice, kept)
    expect(row(bob, doomed)).to_have_count(1)
    expect(row(bob, kept)).to_have_count(1)

    row(bob, doomed).get_by_test_id("delete").click()
    for page in (alice, bob):
        expect(row(page, doomed)).to_have_count(0)
        expect(row(page, kept)).to_have_count(1)
        no_error_toast(page)
    # Gone from the database too: a fresh page does not show it.
    reloaded = demo()
    expect(row(reloaded, kept)).to_have_count(1)
    expect(row(reloaded, doomed)).to_have_count(0)


def test_empty_title_shows_an_error_and_adds_nothing(demo: OpenDemo, marker: str) -> None:
    alice, bob = demo(), demo()
    before = rows(alice).count()
    expect(rows(bob)).to_have_count(before)

    toasts = alice.locator("#starmodel-toasts .starmodel-toast[data-variant=error]")
    for blank in ("", "   "):
        alice.fill("#todo-new", blank)
        with alice.expect_response(lambda r: r.url.split("?")[0].endswith("/todo/create")) as answer:
            alice.click("#todo-add")
        assert answer.value.status == 422
        expect(toasts.last).to_contain_text("new_title")
        expect(alice.locator("#todo-error")).to_contain_text("at least 1 character")

    # A valid title now: rows arrive in commit order, so once it shows, a blank row would have too.
    title = f"{marker} after the refusals"
    add(alice, title)
    expect(alice.locator("#todo-error")).to_have_text("")  # a success clears the field error
    expect(row(bob, title)).to_have_count(1)
    for page in (alice, bob):
        expect(rows(page)).to_have_count(before + 1)
    no_error_toast(bob)


def test_reload_shows_the_persisted_list(demo: OpenDemo, marker: str) -> None:
    page = demo()
    titles = [f"{marker} first", f"{marker} second", f"{marker} third"]
    for title in titles:
        add(page, title)
    row(page, titles[1]).get_by_test_id("toggle").click()
    expect_done(row(page, titles[1]), True)

    page.reload()
    others = demo()  # another session, opened from scratch
    for view in (page, others):
        shown = view.locator("#todo-list .todo-title").filter(has_text=marker)
        expect(shown).to_have_text(titles)  # all of them, in the order they were added
        expect_done(row(view, titles[0]), False)
        expect_done(row(view, titles[1]), True)
        expect_done(row(view, titles[2]), False)

    # The reloaded page is live again.
    row(others, titles[2]).get_by_test_id("delete").click()
    expect(row(page, titles[2])).to_have_count(0)

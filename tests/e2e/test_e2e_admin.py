"""The demo's admin (``sm.admin()``) in a real browser: signing in to reach it (a wrong
password refused), the overview of every entity the demo serves, staff only, a product's
events run from its page with their parameters, and no server-only value (a password hash)
ever on a page.

Products and accounts live in ``demo/demo.db`` (it outlives a run): every test names its own
with a marker and deletes them when it ends.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .harness import REPO, DemoServer
from .shop import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DEMO_DATABASE,
    api_create,
    forget,
    new_marker,
    no_error_toast,
    open_live,
    register,
    sign_in_as_admin,
    stored_product,
    toasts,
)

pytestmark = pytest.mark.e2e

NewContext = Callable[[], BrowserContext]
SCREENSHOT = "/tmp/e2e-admin.png"
WRONG_CREDENTIALS = "Email or password is incorrect"


@pytest.fixture
def marker(demo_server: DemoServer) -> Iterator[str]:
    """A prefix for the names (and account emails) of one test; deleted when it ends."""
    prefix = new_marker()
    yield prefix
    forget(prefix)


def served_entities(server: DemoServer) -> dict[str, str]:
    """``{class name: namespace}`` of the entities the demo app serves, as the server sees them.

    Read in a fresh interpreter with the server's environment: importing the demo here would
    add its entities to this process's registry, beside those other test modules define.
    """
    script = (
        "import json, demo.app as demo\n"
        "print(json.dumps({c.__name__: c.namespace() for c in demo.sm.entities()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=server.server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"importing demo.app failed:\n{done.stderr}"
    entities: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return entities


def sign_in_form(page: Page, email: str, password: str) -> int:
    """Fill the sign-in page and submit it; returns the status of the answer."""
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(password)
    posted = page.expect_response(lambda r: r.url.endswith("/auth/login") and r.request.method == "POST")
    with posted as answer:
        page.locator("#auth-login-submit").click()
    return answer.value.status


def test_admin_needs_signing_in_and_lists_every_entity(
    demo_server: DemoServer, new_context: NewContext
) -> None:
    url = demo_server.url
    entities = served_entities(demo_server)
    page = new_context().new_page()

    page.goto(f"{url}/admin")
    login_url = f"{url}/auth/login?next={quote('/admin', safe='')}"
    expect(page).to_have_url(login_url)

    assert sign_in_form(page, ADMIN_EMAIL, "not the password") == 400
    expect(page.locator("#auth-login-error")).to_have_text(WRONG_CREDENTIALS)
    expect(page).to_have_url(login_url)
    expect(page.locator("input[name=password]")).to_have_value("not the password")  # not reset

    status = sign_in_form(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 200, (
        f"sign-in as {ADMIN_EMAIL} answered {status}: is the account in {DEMO_DATABASE} seeded "
        "with another password? (delete that row to have it made again)"
    )
    page.wait_for_url(f"{url}/admin")
    listed = page.get_by_test_id("admin-entity")
    expect(listed).to_have_count(len(entities))
    names = [text.strip() for text in listed.locator("td:first-child").all_inner_texts()]
    assert names == sorted(entities), "the admin lists exactly the entities the demo serves, by name"
    for name, namespace in entities.items():
        count = page.get_by_test_id(f"admin-count-{namespace}")
        expect(count).to_have_text(re.compile(r"^(\d+|in browsers)$"))
        expect(page.get_by_test_id(f"admin-nav-{namespace}")).to_have_text(name)
    expect(page.get_by_test_id("admin-count-product")).to_have_text(re.compile(r"^\d+$"))  # SQL: counted
    expect(page.get_by_test_id(f"admin-count-{entities['User']}")).to_have_text(re.compile(r"^[1-9]\d*$"))
    no_error_toast(page)
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_admin_refuses_a_signed_in_user_who_is_not_staff(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    context = new_context()
    register(context, url, f"{marker}@example.com")
    page = context.new_page()
    for path in ("/admin", "/admin/product"):
        answer = page.goto(url + path)
        assert answer is not None and answer.status == 403, path
        expect(page).to_have_url(url + path)  # not sent to sign in: signed in already
        expect(page.get_by_test_id("sm-page-error")).to_have_text("You may not use this area")
        expect(page.get_by_test_id("admin-entity")).to_have_count(0)


def test_product_events_run_from_its_admin_page(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    context = new_context()
    sign_in_as_admin(context, url)
    title = f"{marker} watering can"
    product = api_create(context, url, name=title, price="20.00", stock=3)
    page = open_live(context, f"{url}/admin/product/{product['id']}")
    stock, price = page.get_by_test_id("value-stock"), page.get_by_test_id("value-price")
    delta = page.locator("#sm-event-product-adjust_stock-delta")
    expect(stock).to_have_text("3")
    expect(price).to_have_text("€ 20.00")

    def run(button: str, param: str, value: str) -> int:
        page.locator(param).fill(value)
        with page.expect_response(lambda r: f"/product/{button}" in r.url) as answer:
            page.get_by_test_id(f"event-{button}").click()
        return answer.value.status

    # adjust_stock with delta 5: the detail follows live, a success toast says so.
    assert run("adjust_stock", "#sm-event-product-adjust_stock-delta", "5") == 200
    expect(stock).to_have_text("8")
    expect(toasts(page, "success")).to_have_text([f"{title}: 8 in stock"])
    assert stored_product(product["id"]) == {"name": title, "price": Decimal("20.00"), "stock": 8}

    # Refused: more taken away than there is, and a delta that is not a number.
    assert run("adjust_stock", "#sm-event-product-adjust_stock-delta", "-9") == 422
    expect(toasts(page, "error")).to_have_text(["Only 8 in stock"])
    delta.evaluate("el => { el.type = 'text' }")  # what a hand-made request could send
    assert run("adjust_stock", "#sm-event-product-adjust_stock-delta", "five") == 422
    expect(toasts(page, "error").last).to_contain_text("delta: Input should be a valid integer")
    expect(stock).to_have_text("8")
    assert stored_product(product["id"]) == {"name": title, "price": Decimal("20.00"), "stock": 8}

    # discount (staff only) with percent 10: 20.00 -> 18.00; 95 percent is refused.
    assert run("discount", "#sm-event-product-discount-percent", "10") == 200
    expect(price).to_have_text("€ 18.00")
    expect(toasts(page, "success").last).to_have_text(f"{title} now costs 18.00")
    assert run("discount", "#sm-event-product-discount-percent", "95") == 422
    expect(toasts(page, "error").last).to_have_text("The discount must be between 1 and 90 percent")
    expect(price).to_have_text("€ 18.00")
    assert stored_product(product["id"]) == {"name": title, "price": Decimal("18.00"), "stock": 8}


def test_user_pages_of_the_admin_never_show_password_hashes(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    register(new_context(), url, f"{marker}@example.com")  # one more account with a hash
    context = new_context()
    sign_in_as_admin(context, url)
    db = sqlite3.connect(DEMO_DATABASE, timeout=10)
    try:
        accounts = dict(
            db.execute(
                "SELECT email, id FROM users WHERE email IN (?, ?)", (ADMIN_EMAIL, f"{marker}@example.com")
            ).fetchall()
        )
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM users WHERE id IN (?, ?)",
                                           tuple(accounts.values())).fetchall()]
    finally:
        db.close()
    assert len(accounts) == 2 and all(h.startswith("$argon2") for h in hashes), "accounts with hashes"
    namespace = "sm_user"
    page = context.new_page()

    def never_secret(where: str, text: str) -> None:
        for secret in ("argon2", "password_hash", "Password hash", "is_staff", *hashes):
            assert secret not in text, f"{where} shows {secret!r}"

    def visit(path: str) -> None:
        answer = page.goto(url + path)
        assert answer is not None and answer.status == 200, path
        never_secret(f"the source of {path}", answer.text())
        never_secret(f"the page {path}", page.content())

    visit(f"/admin/{namespace}")
    expect(page.get_by_test_id("sm-row").first).to_be_visible()
    visit(f"/admin/{namespace}?q={marker}")
    expect(page.get_by_test_id("sm-row")).to_contain_text([f"{marker}@example.com"])
    fragments = [f"/admin/_ui/{namespace}/list", f"/admin/_ui/{namespace}/list?q={marker}"]
    for email, account in accounts.items():
        visit(f"/admin/{namespace}/{account}")
        expect(page.get_by_test_id("value-email")).to_have_text(email)
        visit(f"/admin/{namespace}/{account}/edit")
        expect(page.locator(f"#sm-{namespace}-edit-email")).to_have_value(email)
        fragments.append(f"/admin/_ui/{namespace}/detail?key={account}")
    for path in fragments:
        fetched = context.request.get(url + path, headers={"Datastar-Request": "true"})
        assert fetched.status == 200, path
        never_secret(f"the fragment {path}", fetched.text())


def test_staff_sign_a_user_out_everywhere_from_the_admin(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    email = f"{marker}@example.com"
    shopper = new_context()
    register(shopper, url, email)  # registering signs in
    assert shopper.request.get(f"{url}/products/new", max_redirects=0).status == 200
    db = sqlite3.connect(DEMO_DATABASE, timeout=10)
    try:
        (user_id,) = db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
    finally:
        db.close()
    staff = new_context()
    sign_in_as_admin(staff, url)
    page = staff.new_page()
    page.goto(f"{url}/admin/sm_user/{user_id}")
    button = page.get_by_test_id("auth-sign-out-everywhere")
    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: "no" changes nothing
    button.click()
    assert shopper.request.get(f"{url}/products/new", max_redirects=0).status == 200
    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    expect(toasts(page, "success").last).to_have_text(f"{email} is signed out (1 browser)")
    away = shopper.request.get(f"{url}/products/new", max_redirects=0)
    assert away.status == 303 and away.headers["location"].startswith("/auth/login")
    no_error_toast(page)

"""The demo's generated product pages (``sm.crud(Product)``) in a real browser: the form checks
what is typed (inline, live, and on submit) and saves nothing invalid; records created, edited
and deleted in one session show up live in another's list; lists sort, search and page; an
edit form keeps what its user types while someone else saves, and refuses to overwrite them.

Products and accounts live in ``demo/demo.db`` (it outlives a run): every test names its own
with a marker and deletes them when it ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Request, expect

from .harness import DemoServer
from .shop import (
    api_create,
    column,
    forget,
    new_marker,
    no_error_toast,
    open_live,
    register,
    rows,
    sign_in_as_admin,
    stored_product,
    stored_products,
    toasts,
)

pytestmark = pytest.mark.e2e

NewContext = Callable[[], BrowserContext]
SCREENSHOT = "/tmp/e2e-crud.png"
DETAIL_URL = re.compile(r"/products/(\d+)$")


@pytest.fixture
def marker(demo_server: DemoServer) -> Iterator[str]:
    """A prefix for the names (and account emails) of one test; deleted when it ends."""
    prefix = new_marker()
    yield prefix
    forget(prefix)


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def mark_not_reloaded(page: Page) -> None:
    page.evaluate("window.e2eSamePage = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.e2eSamePage === true"), "the page was reloaded"


def test_product_created_edited_and_deleted_through_the_pages_live_in_another_session(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    shopper = new_context()
    register(shopper, url, f"{marker}@example.com")
    # Another session (anybody may browse) watches the list of this test's products.
    watcher = open_live(new_context(), f"{url}/products?q={marker}")
    expect(watcher.get_by_test_id("sm-empty")).to_be_visible()
    mark_not_reloaded(watcher)

    page = shopper.new_page()
    page.goto(f"{url}/products/new")
    form = page.locator("#sm-form-product-new")
    name, price = page.locator("#sm-product-new-name"), page.locator("#sm-product-new-price")
    name_error = page.locator("#sm-product-new-name-error")
    price_error = page.locator("#sm-product-new-price-error")
    # Each error sits in its field's row of the form.
    expect(form.locator("div", has=name).get_by_test_id("error-name")).to_have_count(1)
    expect(form.locator("div", has=price).get_by_test_id("error-price")).to_have_count(1)

    # Checked while typing, without submitting.
    checks: list[Request] = []
    page.on("request", lambda r: "/validate" in r.url and "field=name" in r.url and checks.append(r))
    name.press_sequentially("x")
    expect(name_error).to_have_text("String should have at least 2 characters")
    first = len(checks)
    name.press_sequentially("yz12")  # fast typing: one check once it pauses, not one per key
    expect(name_error).to_have_text("")
    assert 1 <= len(checks) - first < 4, f"{len(checks) - first} checks for 4 keys"
    name.fill("x")
    expect(name_error).to_have_text("String should have at least 2 characters")
    price.fill("-1")
    expect(price_error).to_have_text("Input should be greater than or equal to 0")

    # Submitted anyway: refused, both errors shown, an error toast, nothing saved.
    with page.expect_response(lambda r: "/product/create" in r.url) as answer:
        page.get_by_test_id("sm-submit").click()
    assert answer.value.status == 422
    expect(toasts(page, "error")).to_have_text(["Please correct the marked fields; nothing was saved"])
    expect(name_error).to_have_text("String should have at least 2 characters")
    expect(price_error).to_have_text("Input should be greater than or equal to 0")
    assert urlsplit(page.url).path == "/products/new"
    assert stored_products(marker) == []
    expect(watcher.get_by_test_id("sm-empty")).to_be_visible()

    # Valid now: saved, and the browser shows it.
    title = f"{marker} garden chair"
    name.fill(title)
    page.locator("#sm-product-new-description").fill("Folding, beech wood")
    price.fill("24.90")
    page.locator("#sm-product-new-stock").fill("7")
    page.locator("#sm-product-new-category").select_option("garden")
    expect(name_error).to_have_text("")
    expect(price_error).to_have_text("")
    page.get_by_test_id("sm-submit").click()
    page.wait_for_url(DETAIL_URL)
    found = DETAIL_URL.search(page.url)
    assert found is not None
    product_id = int(found.group(1))
    expect(page.get_by_test_id("value-name")).to_have_text(title)
    expect(page.get_by_test_id("value-price")).to_have_text("€ 24.90")
    expect(page.get_by_test_id("value-stock")).to_have_text("7")
    expect(page.get_by_test_id("value-category")).to_have_text("garden")
    saved = stored_products(marker)
    assert [(p["id"], p["name"], p["price"], p["stock"], p["category"]) for p in saved] == [
        (product_id, title, Decimal("24.90"), 7, "garden")
    ]
    # The other session's list got the row without reloading.
    expect(rows(watcher)).to_have_count(1)
    expect(rows(watcher)).to_contain_text(title)
    expect(watcher.get_by_test_id("sm-count")).to_have_text("1-1 of 1")

    # Edit: the form holds the saved values; the new name shows here and there.
    expect(page.get_by_test_id("sm-delete")).to_have_count(0)  # deleting is for staff
    page.get_by_test_id("sm-edit").click()
    page.wait_for_url(f"{url}/products/{product_id}/edit")
    edit_name = page.locator("#sm-product-edit-name")
    expect(edit_name).to_have_value(title)
    expect(page.locator("#sm-product-edit-price")).to_have_value("24.90")
    renamed = f"{marker} garden armchair"
    edit_name.fill(renamed)
    expect(page.get_by_test_id("sm-submit")).to_have_text("Save changes")
    page.get_by_test_id("sm-submit").click()
    page.wait_for_url(f"{url}/products/{product_id}")
    expect(page.get_by_test_id("value-name")).to_have_text(renamed)
    expect(page.get_by_test_id("value-price")).to_have_text("€ 24.90")
    expect(rows(watcher)).to_have_count(1)
    expect(rows(watcher)).to_contain_text(renamed)
    assert stored_product(product_id) == {"name": renamed, "price": Decimal("24.90"), "stock": 7}

    # Delete, as staff: a confirm() first (saying no keeps it), then gone everywhere.
    staff = new_context()
    sign_in_as_admin(staff, url)
    admin_page = staff.new_page()
    admin_page.goto(f"{url}/products/{product_id}")
    questions: list[str] = []
    deletes: list[Request] = []
    admin_page.on("request", lambda r: "/product/delete" in r.url and deletes.append(r))
    admin_page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    admin_page.get_by_test_id("sm-delete").click()
    assert questions == ["Delete this product?"]
    assert deletes == []
    admin_page.once("dialog", lambda d: d.accept())
    with admin_page.expect_response(lambda r: "/product/delete" in r.url) as answer:
        admin_page.get_by_test_id("sm-delete").click()
    assert answer.value.status == 200
    admin_page.wait_for_url(f"{url}/products")
    expect(rows(watcher)).to_have_count(0)
    expect(watcher.get_by_test_id("sm-empty")).to_be_visible()
    expect(page.get_by_test_id("sm-deleted")).to_have_text("This product was deleted.")  # live too
    assert stored_products(marker) == []
    assert_not_reloaded(watcher)
    for shown in (watcher, admin_page):
        no_error_toast(shown)
    watcher.screenshot(path=SCREENSHOT, full_page=True)


def test_list_pages_sorts_and_searches(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    context = new_context()
    register(context, url, f"{marker}@example.com")
    hammers = {1, 4, 7}
    products = []
    for number in range(12):
        kind = "hammer" if number in hammers else "rake"
        products.append(
            api_create(
                context,
                url,
                name=f"{marker} {kind} {number:02}",
                stock=(number * 5) % 12 * 3,  # 0..33, in an order of their own
                price="9.99",
            )
        )
    names = [p["name"] for p in products]
    by_stock = sorted(products, key=lambda p: p["stock"])

    page = context.new_page()
    page.goto(f"{url}/products?q={marker}")
    count = page.get_by_test_id("sm-count")
    expect(rows(page)).to_have_count(10)  # ten a page in the demo
    expect(count).to_have_text("1-10 of 12")
    assert column(page, "Name") == names[:10]  # oldest first
    expect(page.get_by_test_id("sm-prev")).to_have_count(0)

    page.get_by_test_id("sm-next").click()
    expect(count).to_have_text("11-12 of 12")
    assert query_of(page).get("page") == ["2"]
    expect(rows(page)).to_have_count(2)
    assert column(page, "Name") == names[10:]
    expect(page.get_by_test_id("sm-next")).to_have_count(0)

    # A column header sorts (back on page 1), a second click the other way round.
    page.get_by_test_id("sort-stock").click()
    expect(page.get_by_test_id("sort-stock")).to_have_attribute("aria-sort", "ascending")
    assert query_of(page).get("sort") == ["stock"]
    assert "page" not in query_of(page)
    expect(count).to_have_text("1-10 of 12")
    assert column(page, "Stock") == [str(p["stock"]) for p in by_stock[:10]]
    assert column(page, "Name") == [p["name"] for p in by_stock[:10]]

    page.get_by_test_id("sort-stock").click()
    expect(page.get_by_test_id("sort-stock")).to_have_attribute("aria-sort", "descending")
    assert query_of(page).get("desc") == ["1"]
    descending = by_stock[::-1]
    assert column(page, "Stock") == [str(p["stock"]) for p in descending[:10]]
    assert column(page, "Name") == [p["name"] for p in descending[:10]]

    # Searching shows exactly the matches (still sorted as chosen).
    search = page.get_by_test_id("sm-search")
    search.fill(f"{marker} hammer")
    search.press("Enter")
    expect(count).to_have_text("1-3 of 3")
    expect(search).to_have_value(f"{marker} hammer")
    assert column(page, "Name") == [p["name"] for p in descending if "hammer" in p["name"]]
    assert query_of(page).get("sort") == ["stock"]

    # No match: the empty state.
    search.fill(f"{marker} nothing like it")
    search.press("Enter")
    expect(page.get_by_test_id("sm-empty")).to_have_text(f"No products match “{marker} nothing like it”.")
    expect(rows(page)).to_have_count(0)
    expect(count).to_have_text("0-0 of 0")
    no_error_toast(page)


def test_edit_form_keeps_what_is_typed_and_refuses_to_overwrite_a_newer_version(
    demo_server: DemoServer, new_context: NewContext, marker: str
) -> None:
    url = demo_server.url
    alice, bob = new_context(), new_context()
    register(alice, url, f"{marker}-alice@example.com")
    register(bob, url, f"{marker}-bob@example.com")
    product = api_create(alice, url, name=f"{marker} desk lamp", price="30.00", stock=2)
    edit_url = f"{url}/products/{product['id']}/edit"

    mine = open_live(alice, edit_url)
    name = mine.locator("#sm-product-edit-name")
    notice = mine.get_by_test_id("sm-notice")
    expect(name).to_have_value(f"{marker} desk lamp")
    expect(notice).to_have_text("")
    typed = f"{marker} desk lamp, brass"
    name.fill(typed)  # not saved yet
    expect(mine.locator("#sm-product-edit-name-error")).to_have_text("")

    # Meanwhile Bob saves his own edit.
    theirs = bob.new_page()
    theirs.goto(edit_url)
    theirs.locator("#sm-product-edit-name").fill(f"{marker} desk lamp, steel")
    theirs.locator("#sm-product-edit-price").fill("27.50")
    theirs.get_by_test_id("sm-submit").click()
    theirs.wait_for_url(f"{url}/products/{product['id']}")
    expect(theirs.get_by_test_id("value-name")).to_have_text(f"{marker} desk lamp, steel")

    # Alice is told, and keeps what she typed.
    expect(notice).to_contain_text("Someone else changed this product since you opened it")
    expect(name).to_have_value(typed)
    expect(mine.locator("#sm-product-edit-price")).to_have_value("30.00")

    # Saving is refused: Bob's change stays.
    with mine.expect_response(lambda r: "/product/update" in r.url) as answer:
        mine.get_by_test_id("sm-submit").click()
    assert answer.value.status == 409
    expect(toasts(mine, "error")).to_have_text(
        [re.compile(r"changed by someone else since you opened it; reload to see their version")]
    )
    assert mine.url == edit_url
    expect(name).to_have_value(typed)
    assert stored_product(product["id"]) == {
        "name": f"{marker} desk lamp, steel",
        "price": Decimal("27.50"),
        "stock": 2,
    }
    no_error_toast(theirs)

"""Helpers of the e2e tests of the demo's product pages and admin: accounts, products made
through the JSON API, and what the demo's database holds.

The shared demo server keeps products and accounts in ``demo/demo.db``, which outlives a test
run, so each test names its products and accounts with a marker of its own (``new_marker``)
and ``forget`` deletes them when the test ends.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from .harness import REPO

DEMO_DATABASE = REPO / "demo" / "demo.db"  # the demo's default (the server gets no DATABASE_URL)
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "starmodel-demo"  # seeded at start (the harness keeps DEMO_ADMIN_PASSWORD out)
PASSWORD = "correct horse battery"  # of the accounts the tests register
TOASTS = "#starmodel-toasts .starmodel-toast"
LIVE_PATH = "/_starmodel/live"


def new_marker() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def forget(marker: str) -> None:
    """Delete the products named ``<marker>...`` and the accounts ``<marker>...@...`` (with
    their sign-ins)."""
    if not DEMO_DATABASE.is_file():
        return
    db = sqlite3.connect(DEMO_DATABASE, timeout=10)
    try:
        with db:
            db.execute("DELETE FROM product WHERE name LIKE ?", (f"{marker}%",))
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sign_ins'").fetchone():
                db.execute("DELETE FROM sign_ins WHERE user_id IN (SELECT id FROM users WHERE email LIKE ?)",
                           (f"{marker}%",))
            db.execute("DELETE FROM users WHERE email LIKE ?", (f"{marker}%",))
    finally:
        db.close()


def stored_products(marker: str) -> list[dict[str, Any]]:
    """The products named ``<marker>...`` as the database holds them, oldest first."""
    db = sqlite3.connect(DEMO_DATABASE, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        found = db.execute(
            "SELECT id, name, description, price, stock, category FROM product WHERE name LIKE ? "
            "ORDER BY id",
            (f"{marker}%",),
        ).fetchall()
    finally:
        db.close()
    return [{**dict(row), "price": Decimal(str(row["price"]))} for row in found]


def stored_product(product_id: int) -> dict[str, Any] | None:
    db = sqlite3.connect(DEMO_DATABASE, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT name, price, stock FROM product WHERE id = ?", (product_id,)).fetchone()
    finally:
        db.close()
    return None if row is None else {**dict(row), "price": Decimal(str(row["price"]))}


# --- accounts ---------------------------------------------------------------------------

_DATASTAR_FORM = {"Datastar-Request": "true"}  # the form body sets its own content type


def sign_in(context: BrowserContext, base_url: str, email: str, password: str) -> None:
    """Sign the context's session in through the sign-in route (as the page's form posts)."""
    answer = context.request.post(
        f"{base_url}/auth/login", form={"email": email, "password": password}, headers=_DATASTAR_FORM
    )
    if answer.status != 200:
        hint = (
            f"; {ADMIN_EMAIL} in {DEMO_DATABASE} may have another password than the demo default "
            "(it is seeded only when missing): delete that row to have it made again"
            if email == ADMIN_EMAIL
            else ""
        )
        pytest.fail(f"sign-in as {email} refused ({answer.status}): {answer.text()[:300]}{hint}")


def sign_in_as_admin(context: BrowserContext, base_url: str) -> None:
    sign_in(context, base_url, ADMIN_EMAIL, ADMIN_PASSWORD)


def register(context: BrowserContext, base_url: str, email: str) -> None:
    """A new (non-staff) account ``email``, signed in in the context's session."""
    answer = context.request.post(
        f"{base_url}/auth/register",
        form={"name": "E2E shopper", "email": email, "password": PASSWORD, "password_confirm": PASSWORD},
        headers=_DATASTAR_FORM,
    )
    assert answer.status == 200, f"registration of {email} refused ({answer.status}): {answer.text()[:300]}"


# --- products ---------------------------------------------------------------------------


def api_create(context: BrowserContext, base_url: str, **values: Any) -> dict[str, Any]:
    """A product made through the JSON API by the context's (signed-in) user."""
    answer = context.request.post(
        f"{base_url}/api/products",
        data=json.dumps(values, default=str),
        headers={"content-type": "application/json"},
    )
    assert answer.status == 201, f"POST /api/products answered {answer.status}: {answer.text()[:300]}"
    created: dict[str, Any] = answer.json()
    return created


def api_patch(context: BrowserContext, base_url: str, product_id: int, **values: Any) -> dict[str, Any]:
    answer = context.request.patch(
        f"{base_url}/api/products/{product_id}",
        data=json.dumps(values, default=str),
        headers={"content-type": "application/json"},
    )
    assert answer.status == 200, f"PATCH answered {answer.status}: {answer.text()[:300]}"
    changed: dict[str, Any] = answer.json()
    return changed


# --- the page -----------------------------------------------------------------------------


def toasts(page: Page, variant: str) -> Locator:
    return page.locator(f"{TOASTS}[data-variant={variant}]")


def no_error_toast(page: Page) -> None:
    expect(toasts(page, "error")).to_have_count(0)


def rows(page: Page) -> Locator:
    return page.get_by_test_id("sm-row")


def column(page: Page, label: str) -> list[str]:
    """The texts of one column of the list (found by its header), top to bottom."""
    texts: list[str] = page.evaluate(
        """(label) => {
            const heads = [...document.querySelectorAll('[id^=sm-list-] thead th')];
            const at = heads.findIndex((th) => th.textContent.replace(/[▲▼]/g, '').trim() === label);
            if (at < 0) throw new Error('no column ' + label);
            return [...document.querySelectorAll('[data-testid=sm-row]')]
                .map((tr) => tr.children[at].textContent.trim());
        }""",
        label,
    )
    return texts


def open_live(context: BrowserContext, url: str) -> Page:
    """A new tab on ``url``, once its live stream is open (changes made from then on reach it)."""
    page = context.new_page()
    with page.expect_response(lambda r: urlsplit(r.url).path == LIVE_PATH) as live:
        page.goto(url)
    assert live.value.status == 200, f"the live stream answered {live.value.status}"
    return page

"""The demo's product catalogue: a SQL entity with generated CRUD pages (``/products``), a JSON
API (``/api/products``, described at ``/api/openapi.json``) and a place in the admin.

No view code: the form's inputs come from the field types and constraints (text, textarea,
number, select, checkbox, date), lists search, sort and page by themselves, and every page
follows changes made by anybody, live.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from fasthtml.common import A, Span
from monsterui.all import DivLAligned, TextPresets
from sqlmodel import Field

from starmodel import CallContext, Entity, FieldUI, StarModel, StarModelError, event, toast
from starmodel.contrib.auth import Auth, signed_in, staff
from starmodel.ui import EntityViews

__all__ = [
    "DEMO_ADMIN_EMAIL",
    "SAMPLE_PRODUCTS",
    "Category",
    "Product",
    "ProductViews",
    "install_shop",
    "seed_products",
    "shop_links",
]

log = logging.getLogger("demo")


class Category(StrEnum):
    tools = "tools"
    garden = "garden"
    kitchen = "kitchen"
    toys = "toys"


class Product(Entity, table=True):
    """Something the shop sells. Anybody may browse; signed-in users may add and edit; only
    staff may delete or change prices with the ``discount`` event."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=2, max_length=80, description="What customers see in the shop")
    description: Annotated[str, FieldUI(widget="textarea", list=False)] = Field(default="", max_length=2000)
    price: Decimal = Field(default=Decimal("0"), ge=0, le=100_000, max_digits=10, decimal_places=2)
    stock: int = Field(default=0, ge=0, le=1_000_000, description="Units in the warehouse")
    category: Category = Category.tools
    available: bool = True
    released: date | None = None

    model_config = {  # type: ignore[assignment]
        "policy": {
            "read": True,
            "create": signed_in,
            "update": signed_in,
            "delete": staff,
            "events": signed_in,
        },
        "search": ("name", "description"),
    }

    @event
    def adjust_stock(self, delta: int) -> Any:
        """Add units to the stock (a negative number takes them away)."""
        if self.stock + delta < 0:
            raise ValueError(f"Only {self.stock} in stock")
        self.stock += delta
        return toast(f"{self.name}: {self.stock} in stock", "success")

    @event(allow=staff)
    def discount(self, percent: int) -> Any:
        """Lower the price by a percentage (staff only)."""
        if not 1 <= percent <= 90:
            raise ValueError("The discount must be between 1 and 90 percent")
        self.price = (self.price * (100 - percent) / 100).quantize(Decimal("0.01"))
        return toast(f"{self.name} now costs {self.price}", "success")


class ProductViews(EntityViews):
    """The generated views, with two touches: prices shown as money, ten rows a page."""

    per_page = 10
    cells = {"price": lambda product: Span(f"€ {product.price:,.2f}", cls="tabular-nums")}


SAMPLE_PRODUCTS: tuple[dict[str, Any], ...] = (
    {"name": "Claw hammer", "description": "16 oz, fibreglass handle.", "price": Decimal("14.90"),
     "stock": 25, "category": Category.tools, "released": date(2023, 3, 1)},
    {"name": "Watering can", "description": "Ten litres, with a brass rose.", "price": Decimal("22.50"),
     "stock": 8, "category": Category.garden},
    {"name": "Chef's knife", "description": "20 cm, carbon steel.", "price": Decimal("49.00"),
     "stock": 12, "category": Category.kitchen},
    {"name": "Wooden train set", "description": "Forty pieces, no batteries.", "price": Decimal("35.00"),
     "stock": 0, "category": Category.toys, "available": False},
)
"""What a first start puts in the empty catalogue, so that /products has something to show."""

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD_DEFAULT = "starmodel-demo"


def demo_admin_password() -> str:
    """The demo admin's password: ``DEMO_ADMIN_PASSWORD``, else a documented demo value."""
    return os.environ.get("DEMO_ADMIN_PASSWORD") or DEMO_ADMIN_PASSWORD_DEFAULT


def install_shop(sm: StarModel) -> Auth:
    """Accounts (``/auth/login``), the product pages and API, and the admin (staff only);
    a staff account ``admin@example.com`` is made at start if it does not exist yet."""
    auth = Auth(sm)
    sm.crud(Product, views_class=ProductViews)
    sm.admin()

    async def seed_admin() -> None:
        try:
            if await auth.store.by_email(DEMO_ADMIN_EMAIL) is None:
                await auth.create_user(DEMO_ADMIN_EMAIL, demo_admin_password(), name="Demo admin", staff=True)
                log.warning(
                    "demo: staff account %s created (password from DEMO_ADMIN_PASSWORD, "
                    "else the demo default; see the README)",
                    DEMO_ADMIN_EMAIL,
                )
        except StarModelError as exc:  # the database is down: the rest of the demo still runs
            log.error("demo: staff account not checked: %s", exc)

    sm.startup_hooks.append(seed_admin)
    sm.startup_hooks.append(lambda: seed_products(sm))
    return auth


async def seed_products(sm: StarModel) -> int:
    """Fill an empty catalogue with ``SAMPLE_PRODUCTS``; a catalogue that has any product is
    left as it is (so every later start adds nothing). Returns how many were added."""
    try:
        async with sm.dispatcher.uow_factory(Product) as uow:
            if await uow.list(Product, limit=1):
                return 0
            for values in SAMPLE_PRODUCTS:
                uow.add(Product(**values))
            await uow.commit(CallContext(session_id="server"))
    except StarModelError as exc:  # the database is down: the rest of the demo still runs
        log.error("demo: sample products not added: %s", exc)
        return 0
    log.info("demo: %d sample products added to the empty catalogue", len(SAMPLE_PRODUCTS))
    return len(SAMPLE_PRODUCTS)


def shop_links(user: Any) -> Any:
    """Links to the generated pages, for the demo's home page."""
    return DivLAligned(
        A("Products", href="/products", cls="uk-btn uk-btn-default", data_testid="nav-products"),
        A("Admin", href="/admin", cls="uk-btn uk-btn-default", data_testid="nav-admin"),
        A("API", href="/api/openapi.json", cls="uk-btn uk-btn-ghost"),
        Span(f"Signed in as {user.email}", cls=TextPresets.muted_sm)
        if user is not None
        else A("Sign in", href="/auth/login", cls="uk-btn uk-btn-ghost", data_testid="nav-sign-in"),
        cls="gap-2",
    )

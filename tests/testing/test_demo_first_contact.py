"""What a newcomer meets first in the demo, tested with the kit on a fresh app wired like
``demo/app.py``'s shop: a catalogue with products at the first start (and no more at the
next), generated pages with a way home, no canonical link claiming https on a plain-http
server, the start-up line that points at ``starmodel migrate``, toasts in correct English and
preferences that never touch the page's theme."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))

from demo.batteries import Preferences, Showcase  # noqa: E402
from demo.products import SAMPLE_PRODUCTS, Product, install_shop, seed_products  # noqa: E402
from starmodel import StarModel  # noqa: E402
from starmodel.app.settings import Settings  # noqa: E402
from starmodel.testing import EventClient  # noqa: E402


def shop_app(tmp_path: Path) -> StarModel:
    """The demo's shop on a database of its own (the same file for every app of the test)."""
    settings = Settings(secret_key="first-contact", database_url=f"sqlite:///{tmp_path / 'shop.db'}",
                        migrations_dir=str(tmp_path / "migrations"), redis_url=None)
    sm = StarModel(entities=[Product, Preferences, Showcase], settings=settings, title="Shop")
    install_shop(sm)
    return sm


async def test_the_catalogue_has_products_at_the_first_start_and_no_more_later(tmp_path: Path) -> None:
    async with EventClient(shop_app(tmp_path)) as client:
        names = [p.name for p in await client.records(Product)]
        assert names == [p["name"] for p in SAMPLE_PRODUCTS]
        page = await client.http.get("/products")
        assert page.status_code == 200 and "Claw hammer" in page.text and "sm-empty" not in page.text
    sm = shop_app(tmp_path)  # a restart on the same database
    async with EventClient(sm) as client:
        assert len(await client.records(Product)) == len(SAMPLE_PRODUCTS)
        assert await seed_products(sm) == 0  # whoever calls it again


@pytest.mark.parametrize("path", ["/products", "/products/1", "/admin"])
async def test_generated_pages_lead_back_home(tmp_path: Path, path: str) -> None:
    async with EventClient(shop_app(tmp_path)) as client:
        if path == "/admin":  # for staff
            signed_in = await client.http.post(
                "/auth/login", content="email=admin%40example.com&password=starmodel-demo",
                headers={"Datastar-Request": "true", "Content-Type": "application/x-www-form-urlencoded"},
            )
            assert signed_in.status_code == 200
        page = await client.http.get(path)
        assert page.status_code == 200
        home = '<a href="/" data-testid="sm-home" class="font-semibold hover:underline">← Shop</a>'
        assert home in page.text


async def test_pages_claim_no_canonical_address(tmp_path: Path) -> None:
    """FastHTML's canonical link says https:// whatever the server speaks: StarModel's pages
    have none (a page is its own canonical address anyway)."""
    async with EventClient(shop_app(tmp_path)) as client:
        for path in ("/products", "/auth/login"):
            page = await client.http.get(path)
            assert page.status_code == 200
            assert 'rel="canonical"' not in page.text, path


async def test_the_start_up_line_points_at_starmodel_migrate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="starmodel")
    async with EventClient(shop_app(tmp_path)):
        pass
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("created tables")]
    assert "`starmodel migrate`" in line and "db init" not in line


async def test_the_showcase_toasts_read_as_english(tmp_path: Path) -> None:
    expected = {"info": "An info toast", "success": "A success toast", "warning": "A warning toast",
                "error": "An error toast"}
    async with EventClient(shop_app(tmp_path)) as client:
        for variant, text in expected.items():
            [toast] = (await client.call(Showcase.notify, variant=variant)).toasts
            assert (toast.message, toast.variant) == (text, variant)


async def test_preferences_greet_by_name_and_refuse_a_name_too_long(tmp_path: Path) -> None:
    async with EventClient(shop_app(tmp_path)) as client:
        named = await client.call(Preferences.set_name, _signals={"preferences": {"typed_name": "  Ada  "}})
        assert named.signals["preferences"]["name"] == "Ada"
        assert named.signals["preferences"]["greeting"] == "Hello, Ada!"
        french = await client.call(Preferences.set_language, language="fr",
                                   _signals={"preferences": {"name": "Ada", "language": "en"}})
        assert french.signals["preferences"]["greeting"] == "Bonjour, Ada !"
        too_long = await client.call(Preferences.set_name, typed_name="x" * 41)
        assert too_long.status == 422 and "name" in too_long.field_errors
        assert "theme" not in Preferences.model_fields  # the theme picker alone sets the theme

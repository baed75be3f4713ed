"""The README's "Generated CRUD, admin and accounts" example runs: its app serves the pages,
the API and the admin it promises, with the policies it declares."""

from __future__ import annotations

import re
import types
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FORM = {"content-type": "application/x-www-form-urlencoded", "Datastar-Request": "true"}


def example(tmp_path: Path) -> types.ModuleType:
    section = README.read_text().split("## Generated CRUD, admin and accounts", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    code = code.replace("sqlite:///shop.db", f"sqlite:///{tmp_path / 'shop.db'}")
    module = types.ModuleType("readme_shop")
    exec(compile(code, str(README), "exec", dont_inherit=True), module.__dict__)
    return module


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(clean_settings_env: None) -> None:
    """The example builds its own settings."""


async def test_the_readme_shop_runs(tmp_path: Path) -> None:
    shop = example(tmp_path)
    sm, auth = shop.sm, shop.auth
    async with sm.app.router.lifespan_context(sm.app):
        transport = httpx.ASGITransport(app=sm.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await http.get("/products")).status_code == 200
            assert (await http.get("/api/products")).json()["total"] == 0
            assert (await http.post("/api/products", json={"name": "Saw"})).status_code == 401
            assert (await http.get("/admin")).status_code == 303
            await auth.create_user("boss@example.com", "a long password", staff=True)
            signed = await http.post(
                "/auth/login", content="email=boss%40example.com&password=a+long+password", headers=FORM
            )
            assert signed.status_code == 200
            made = await http.post("/api/products", json={"name": "Saw", "price": "9.50"})
            assert made.status_code == 201
            assert (await http.get("/admin")).status_code == 200
            restock = await http.post(
                f"/product/restock?_key={made.json()['id']}&amount=3", headers={"Datastar-Request": "true"}
            )
            assert restock.status_code == 200
            assert (await http.get(f"/api/products/{made.json()['id']}")).json()["stock"] == 3
            document = (await http.get("/api/openapi.json")).json()
            assert "/api/products/{key}" in document["paths"]

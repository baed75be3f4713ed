"""The sign-in flow on the real PostgreSQL (its tables are dropped afterwards)."""

from __future__ import annotations

import pytest
from auth_kit import Browser, make_app, redirect_target, running
from sqlalchemy import text

from starmodel.contrib.auth import UID_KEY, WRONG_CREDENTIALS
from starmodel.contrib.auth.plugin import EMAIL_TAKEN

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def app(tmp_path):
    sm, auth = make_app(tmp_path, database_url=POSTGRES_URL)
    async with sm.services.database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS users, sign_ins"))
    try:
        async with running(sm):
            yield sm, auth
    finally:
        async with sm.services.database.engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS users, sign_ins"))
        await sm.services.database.dispose()


async def test_register_sign_in_and_out_on_postgres(app):
    sm, auth = app
    browser = Browser(sm)
    registered = await browser.register("Pg@Example.com", name="Pat")
    assert registered.status_code == 200 and redirect_target(registered) == "/"
    await browser.post_form("/auth/logout")
    assert UID_KEY not in browser.session()
    taken = await browser.register("pg@example.com")
    assert taken.status_code == 422 and EMAIL_TAKEN in taken.text
    wrong = await browser.login("pg@example.com", "not the password")
    assert wrong.status_code == 400 and WRONG_CREDENTIALS in wrong.text
    signed = await browser.login("PG@example.com", next="/after")
    assert signed.status_code == 200 and redirect_target(signed) == "/after"
    user = await auth.store.by_email("pg@example.com")
    assert browser.session()[UID_KEY] == user.id and user.name == "Pat"
    assert user.password_hash.startswith("$argon2id$")
    assert user.created_at.tzinfo is not None
    assert "signed in as pg@example.com" in (await browser.http.get("/auth/login")).text
    assert [u.email for u in await auth.store.page()] == ["pg@example.com"]
    await browser.aclose()

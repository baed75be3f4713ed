"""The generated admin with the auth plugin: visitors are sent to sign in, users who are not
staff are refused, staff see the accounts (without any hash) and a sign-out button."""

from __future__ import annotations

from auth_kit import PASSWORD, Browser, make_app, running


async def test_the_admin_follows_the_signed_in_user(tmp_path):
    sm, auth = make_app(tmp_path)
    sm.admin()
    async with running(sm):
        await auth.create_user("boss@example.com", PASSWORD, staff=True)
        await auth.create_user("plain@example.com", PASSWORD)
        visitor, plain, boss = Browser(sm), Browser(sm), Browser(sm)
        away = await visitor.http.get("/admin")
        assert away.status_code == 303 and away.headers["location"] == "/auth/login?next=%2Fadmin"
        await plain.login("plain@example.com")
        assert (await plain.http.get("/admin")).status_code == 403
        await boss.login("boss@example.com")
        users = await boss.http.get("/admin/sm_user")
        assert users.status_code == 200
        assert "plain@example.com" in users.text and 'data-testid="sm-sign-out"' in users.text
        assert "@post('/auth/logout'" in users.text
        for browser in (visitor, plain, boss):
            for response in browser.responses:
                assert "$argon2" not in response.text and "password_hash" not in response.text
            await browser.aclose()

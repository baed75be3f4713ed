"""No password, password hash or session cookie in any log line, whatever the log level:
signing in and out, a wrong password, a changed password, events of a signed-in user."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
from argon2 import PasswordHasher
from ops_kit import DATASTAR, Tally, json_lines

from starmodel import StarModel
from starmodel.contrib.auth import Auth, Passwords

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret phrase"
WRONG_PASSWORD = "not my password at all"
FORM = {**DATASTAR, "Content-Type": "application/x-www-form-urlencoded"}


async def test_no_secret_reaches_a_log_line(tmp_path) -> None:
    sm = StarModel(entities=[Tally], secret_key="ops-secrets", log_format="json",
                   database_url=f"sqlite:///{tmp_path}/auth.db")
    fast = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    auth = Auth(sm, passwords=fast)
    cookies: set[str] = set()

    def keep_cookies(response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            value = header.split(";", 1)[0].split("=", 1)[1]
            if value:
                cookies.add(value)

    with json_lines() as lines:
        async with sm.app.router.lifespan_context(sm.app):
            user = await auth.create_user("ada@example.com", PASSWORD)
            hashes = {user.password_hash}
            transport = httpx.ASGITransport(app=sm.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                         event_hooks={"response": [_sync(keep_cookies)]}) as browser:

                async def login(password: str) -> httpx.Response:
                    body = urlencode({"email": "ada@example.com", "password": password})
                    return await browser.post("/auth/login", content=body, headers=FORM)

                assert (await login(WRONG_PASSWORD)).status_code == 400
                assert (await login(PASSWORD)).status_code == 200
                assert (await browser.post("/ops_tally/add", headers=DATASTAR)).status_code == 200
                assert (await browser.get("/auth/login")).status_code == 200
                assert (await browser.post("/auth/logout", headers=FORM)).status_code == 200
                # the password changes (as `starmodel users password` does it)
                new_hash = await auth.passwords.hash(NEW_PASSWORD)
                hashes.add(new_hash)
                await auth.store.set_password_hash(user.id, new_hash)
                assert (await login(PASSWORD)).status_code == 400
                assert (await login(NEW_PASSWORD)).status_code == 200
                assert (await browser.post("/ops_tally/add", headers=DATASTAR)).status_code == 200
    secrets = {PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, *hashes, *cookies}
    assert len(cookies) >= 2  # sessions were made, and renewed at sign-in
    assert any(line["logger"] == "starmodel.events" for line in lines)
    assert any(line["logger"] == "starmodel.requests" and line["path"] == "/auth/login" for line in lines)
    # the database's statements were logged (with their parameters), the hashes hidden
    assert any("<password hash>" in line["message"] for line in lines)
    for line in lines:
        text = json.dumps(line, ensure_ascii=False)
        for secret in secrets:
            assert secret not in text, f"a secret in the log: {text[:300]}"
        assert "$argon2" not in text


def _sync(hook):  # httpx wants async hooks on an async client
    async def run(response: httpx.Response) -> None:
        hook(response)

    return run

"""Every wrong input to the auth routes gets a clear 4xx answer: never a 500, never a trace."""

from __future__ import annotations

import asyncio

import pytest
from auth_kit import DATASTAR, PASSWORD, Browser, make_app, patched, running

from starmodel.contrib.auth import UID_KEY


@pytest.fixture
async def app(tmp_path):
    sm, auth = make_app(tmp_path)
    async with running(sm):
        await auth.create_user("user@example.com", PASSWORD)
        yield sm, auth


@pytest.fixture
async def browser(app):
    browser = Browser(app[0])
    yield browser
    for response in browser.responses:
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
    await browser.aclose()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
@pytest.mark.parametrize("headers, content, status, message", [
    ({**DATASTAR, "Content-Type": "application/json"}, b'{"email": "user@example.com"}', 415,
     "Send the form as application/x-www-form-urlencoded"),
    (DATASTAR, b"", 415, "Send the form as application/x-www-form-urlencoded"),
    ({**DATASTAR, **FORM}, b"email=" + b"a" * 20_000, 413, "The form is too large"),
    ({**DATASTAR, **FORM}, b"email=%ff%fe&password=\xff", 400, "The form could not be read"),
    ({**DATASTAR, **FORM}, b"&".join(b"f%d=1" % i for i in range(40)), 400, "The form could not be read"),
    (FORM, b"email=user%40example.com&password=x", 403, "Datastar-Request header"),
    ({**DATASTAR, **FORM, "Origin": "https://evil.example"}, b"email=a", 403, "Cross-origin request refused"),
    ({**DATASTAR, **FORM, "Sec-Fetch-Site": "cross-site"}, b"email=a", 403, "Cross-site request refused"),
])
async def test_unreadable_or_foreign_posts_are_refused(browser, path, headers, content, status, message):
    answer = await browser.http.post(path, content=content, headers=headers)
    assert answer.status_code == status
    assert message in patched(answer)
    assert UID_KEY not in browser.session()


@pytest.mark.parametrize("form, errors", [
    ({}, {"email": "Enter your email address", "password": "Enter your password"}),
    ({"email": "not-an-email", "password": PASSWORD}, {"email": "Enter a valid email address"}),
    ({"email": "a b@example.com", "password": PASSWORD}, {"email": "Enter a valid email address"}),
    ({"email": "a@" + "x" * 260 + ".com", "password": PASSWORD}, {"email": "at most 254 characters"}),
    ({"email": "user@example.com", "password": "é" * 600}, {"password": "at most 1024 bytes"}),
])
async def test_login_field_errors(browser, form, errors):
    answer = await browser.post_form("/auth/login", form)
    assert answer.status_code == 422
    html = patched(answer)
    for field, text in errors.items():
        slot = html.split(f'id="auth-login-{field}-error"', 1)[1].split("</p>", 1)[0]
        assert text in slot


@pytest.mark.parametrize("form, field, text", [
    ({"email": "new@example.com"}, "password", "Choose a password"),
    ({"email": "new@example.com", "password": "short", "password_confirm": "short"}, "password",
     "at least 8 characters"),
    ({"email": "new@example.com", "password": "x" * 1025, "password_confirm": "x" * 1025}, "password",
     "at most 1024 bytes"),
    ({"email": "new@example.com", "password": PASSWORD, "password_confirm": "other thing"},
     "password_confirm", "The two passwords differ"),
    ({"email": "new@", "password": PASSWORD, "password_confirm": PASSWORD}, "email", "valid email"),
    ({"email": "new@example.com", "name": "n" * 201, "password": PASSWORD, "password_confirm": PASSWORD},
     "name", "at most 200 characters"),
])
async def test_register_field_errors(app, browser, form, field, text):
    answer = await browser.post_form("/auth/register", form)
    assert answer.status_code == 422
    slot = patched(answer).split(f'id="auth-register-{field}-error"', 1)[1].split("</p>", 1)[0]
    assert text in slot
    assert await app[1].store.count() == 1  # nobody was created


async def test_logout_is_never_a_get(browser):
    assert (await browser.http.get("/auth/logout")).status_code == 405
    refused = await browser.http.post("/auth/logout")  # no Datastar header: a cross-site form
    assert refused.status_code == 403


async def test_an_errored_form_never_sends_the_password_back(browser):
    secret = "my-very-secret-typo"
    answer = await browser.post_form("/auth/register", {"email": "bad", "password": secret,
                                                        "password_confirm": secret})
    assert answer.status_code == 422 and secret not in answer.text


async def test_registration_can_be_turned_off(tmp_path):
    sm, _ = make_app(tmp_path, registration=False)
    async with running(sm):
        browser = Browser(sm)
        assert (await browser.http.get("/auth/register")).status_code == 404
        assert (await browser.register("x@example.com")).status_code in (404, 405)
        assert "/auth/register" not in (await browser.http.get("/auth/login")).text
        await browser.aclose()


async def test_bad_configuration_is_one_clear_error(tmp_path):
    from starmodel import StarModel
    from starmodel.contrib.auth import Auth, RateLimit
    from starmodel.core.errors import ConfigurationError

    sm = StarModel(entities=[], secret_key="x", database_url=f"sqlite:///{tmp_path}/c.db")
    with pytest.raises(ConfigurationError, match="prefix must be a path"):
        Auth(sm, prefix="auth'); alert(1)//")
    with pytest.raises(ConfigurationError, match="after_login must be a path on this site"):
        Auth(sm, after_login="https://evil.example")
    with pytest.raises(ConfigurationError, match="attempts must be a whole number"):
        RateLimit(attempts=0)
    Auth(sm)
    with pytest.raises(ConfigurationError, match="installed on this app already"):
        Auth(sm)


async def test_a_database_that_is_down_is_a_clear_503(tmp_path):
    sm, _ = make_app(tmp_path, database_url="postgresql://postgres@127.0.0.1:1/nothing")
    async with running(sm):
        browser = Browser(sm)
        assert (await browser.http.get("/auth/login")).status_code == 200
        for answer in (await browser.login("a@example.com"), await browser.register("a@example.com")):
            assert answer.status_code == 503
            assert "not possible right now" in patched(answer)
        await browser.aclose()


async def test_two_registrations_racing_for_one_email(app):
    sm, auth = app
    first, second = Browser(sm), Browser(sm)
    answers = await asyncio.gather(first.register("race@example.com"), second.register("race@example.com"))
    assert sorted(a.status_code for a in answers) == [200, 422]
    refused = next(a for a in answers if a.status_code == 422)
    assert "An account with this email exists already" in patched(refused)
    assert [u.email for u in await auth.store.page()].count("race@example.com") == 1
    for browser in (first, second):
        await browser.aclose()

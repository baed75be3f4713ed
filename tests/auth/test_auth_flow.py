"""The auth plugin over HTTP on SQLite: register, sign in and out, ``next``, session ids,
the current user in events, and what is refused."""

from __future__ import annotations

import asyncio

import pytest
from auth_kit import COOKIE, PASSWORD, Browser, make_app, patched, redirect_target, running
from fasthtml.common import Div

from starmodel import CallContext, Entity, event
from starmodel.adapters.driving.web.identity import SESSION_KEY
from starmodel.contrib.auth import UID_KEY, WRONG_CREDENTIALS, User, signed_in, staff
from starmodel.contrib.auth.testing import sign_in, sign_out
from starmodel.testing import EventClient

SEEN: list[object] = []


def _remember(ctx) -> bool:
    SEEN.append(ctx.user)
    return True


class Vault(Entity):
    """Per session: who may do what is decided by the event's own rule."""

    model_config = {"namespace": "auth_vault"}
    notes: list[str] = []

    @event(allow=_remember)
    def look(self):
        return Div("looked", id="vault-status")

    @event(allow=signed_in)
    def write(self, text: str):
        self.notes.append(text)

    @event(allow=staff)
    def wipe(self):
        self.notes = []


class Archive(Entity):
    """Global, with an entity policy: only staff run its events."""

    model_config = {"namespace": "auth_archive", "scope": "global", "policy": {"events": staff}}
    sealed: bool = False

    @event
    def seal(self):
        self.sealed = True


@pytest.fixture
async def app(tmp_path):
    sm, auth = make_app(tmp_path, Vault, Archive)
    async with running(sm):
        yield sm, auth


@pytest.fixture
async def browser(app):
    browser = Browser(app[0])
    yield browser
    await browser.aclose()


async def test_register_signs_in_a_normal_user(app, browser):
    auth = app[1]
    page = await browser.http.get("/auth/register")
    assert page.status_code == 200 and 'id="auth-register"' in page.text
    assert 'data-on:submit="@post(\'/auth/register\', {contentType: \'form\'})"' in page.text
    answer = await browser.register("Ada@Example.com", name="Ada")
    assert answer.status_code == 200, answer.text
    assert redirect_target(answer) == "/"
    user = await auth.store.by_email("ada@example.com")
    assert user is not None and user.name == "Ada" and user.is_staff is False
    assert browser.session()[UID_KEY] == user.id
    assert (await browser.http.get("/auth/login")).text.count("signed in as ada@example.com") == 1


async def test_email_taken_is_a_field_error(app, browser):
    await app[1].create_user("taken@example.com", PASSWORD)
    answer = await browser.register("TAKEN@example.com")
    assert answer.status_code == 422
    assert "An account with this email exists already" in patched(answer)
    assert UID_KEY not in browser.session()


async def test_sign_in_then_out(app, browser):
    sm, auth = app
    assert (sm.login_url, sm.logout_url) == ("/auth/login", "/auth/logout")
    user = await auth.create_user("bob@example.com", PASSWORD, name="Bob")
    signed = await browser.login(" BOB@example.com ", next="/reports?week=2")
    assert signed.status_code == 200, signed.text
    assert redirect_target(signed) == "/reports?week=2"
    assert browser.session()[UID_KEY] == user.id
    out = await browser.post_form("/auth/logout")
    assert out.status_code == 200 and redirect_target(out) == "/"
    assert UID_KEY not in browser.session()
    assert "signed in as" not in (await browser.http.get("/auth/login")).text


@pytest.mark.parametrize("email, password", [
    ("bob@example.com", "wrong password"),  # a wrong password
    ("nobody@example.com", PASSWORD),  # an unknown email: the very same answer
])
async def test_wrong_credentials_get_one_message(app, browser, email, password):
    await app[1].create_user("bob@example.com", PASSWORD)
    answer = await browser.login(email, password)
    assert answer.status_code == 400
    html = patched(answer)
    assert WRONG_CREDENTIALS in html and 'id="auth-login-error"' in html
    assert "unknown" not in html.lower() and "no account" not in html.lower()
    assert redirect_target(answer) is None and UID_KEY not in browser.session()


@pytest.mark.parametrize("target, expected", [
    ("/orders/7?tab=items", "/orders/7?tab=items"),
    ("//evil.example/x", "/"),
    ("https://evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/ok\n.evil", "/"),
    ("", "/"),
])
async def test_next_only_goes_to_this_site(app, browser, target, expected):
    await app[1].create_user("n@example.com", PASSWORD)
    answer = await browser.login("n@example.com", next=target)
    assert redirect_target(answer) == expected


async def test_the_login_page_keeps_a_safe_next_only(app, browser):
    kept = await browser.http.get("/auth/login", params={"next": "/admin?x=1"})
    assert 'name="next" value="/admin?x=1"' in kept.text
    dropped = await browser.http.get("/auth/login", params={"next": "//evil.example"})
    assert 'name="next" value="/"' in dropped.text


async def test_session_id_changes_at_sign_in_and_out(app, browser):
    await app[1].create_user("s@example.com", PASSWORD)
    await browser.http.get("/auth/login")
    await browser.post_form("/auth/logout")  # a visitor's session, as a planted one would be
    planted = browser.session()[SESSION_KEY]
    await browser.login("s@example.com")
    after_login = browser.session()[SESSION_KEY]
    assert after_login != planted
    await browser.post_form("/auth/logout")
    assert browser.session()[SESSION_KEY] not in (planted, after_login)


async def test_events_see_the_signed_in_user(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as client:
        SEEN.clear()
        assert (await client.call(Vault.look)).ok
        assert SEEN == [None]
        await sign_in(client, "ada@example.com", PASSWORD)
        assert [c.name for c in client.http.cookies.jar] == [COOKIE]  # the server's, alone
        assert (await client.call(Vault.look)).ok
        assert isinstance(SEEN[-1], User) and SEEN[-1].id == ada.id
        assert (await client.call(Vault.write, text="hello")).ok
        await sign_out(client)
        assert (await client.call(Vault.write, text="again")).status == 403
        assert [c.name for c in client.http.cookies.jar] == [COOKIE]


async def test_who_may_not_call_an_event_gets_403_and_nothing_changes(app):
    sm, auth = app
    await auth.create_user("plain@example.com", PASSWORD)
    await auth.create_user("boss@example.com", PASSWORD, staff=True)
    async with EventClient(sm, lifespan=False) as client:
        anonymous = await client.call(Vault.write, text="x")
        assert anonymous.status == 403
        await sign_in(client, "plain@example.com", PASSWORD)
        assert (await client.call(Vault.write, text="kept")).ok
        assert (await client.call(Vault.wipe)).status == 403
        assert (await client.state(Vault)).notes == ["kept"]
        assert (await client.call(Archive.seal)).status == 403  # the entity's policy
        assert (await client.state(Archive)).sealed is False

        boss = client.session()
        await sign_in(boss, "boss@example.com", PASSWORD)
        assert (await boss.call(Archive.seal)).ok
        assert (await boss.state(Archive)).sealed is True


async def test_a_deleted_user_is_signed_out(app, browser):
    sm, auth = app
    user = await auth.create_user("gone@example.com", PASSWORD)
    await browser.login("gone@example.com")
    async with sm.dispatcher.uow_factory(User) as uow:
        uow.remove(await uow.load(User, str(user.id)))
        await uow.commit(CallContext(session_id="test"))
    page = await browser.http.get("/auth/login")
    assert "signed in as" not in page.text
    assert UID_KEY not in browser.session()


async def test_a_new_password_signs_out_older_sessions(app, browser):
    auth = app[1]
    user = await auth.create_user("pw@example.com", PASSWORD)
    await browser.login("pw@example.com")
    assert "signed in as" in (await browser.http.get("/auth/login")).text
    await auth.store.set_password_hash(user.id, await auth.passwords.hash("another password"))
    page = await browser.http.get("/auth/login")
    assert "signed in as" not in page.text


async def test_login_redirect_and_user_for_pages(app, browser):
    sm, auth = app

    @sm.app.route("/private")
    async def private(request):
        user = await auth.user(request)
        if user is None:
            return auth.login_redirect(request)
        return Div(f"hello {user.email}", id="hello")

    away = await browser.http.get("/private?page=2")
    assert away.status_code == 303
    assert away.headers["location"] == "/auth/login?next=%2Fprivate%3Fpage%3D2"
    await auth.create_user("p@example.com", PASSWORD)
    answer = await browser.login("p@example.com", next="/private?page=2")
    assert redirect_target(answer) == "/private?page=2"
    assert "hello p@example.com" in (await browser.http.get("/private?page=2")).text


async def test_a_sign_in_lasts_the_session_lifetime_unless_told_otherwise(tmp_path):
    sm, auth = make_app(tmp_path, session_max_age=1)  # STARMODEL_SESSION_MAX_AGE
    assert auth.sign_in_for == 1
    async with running(sm):
        await auth.create_user("short@example.com", PASSWORD)
        browser = Browser(sm)
        answer = await browser.login("short@example.com")
        assert "Max-Age=1;" in answer.headers["set-cookie"]
        assert "signed in as" in (await browser.http.get("/auth/login")).text
        await asyncio.sleep(1.2)
        assert "signed in as" not in (await browser.http.get("/auth/login")).text
        await browser.aclose()
    assert make_app(tmp_path)[1].sign_in_for == 14 * 24 * 3600


async def test_a_sign_in_lasts_sign_in_for(tmp_path):
    sm, auth = make_app(tmp_path, sign_in_for=1)
    async with running(sm):
        await auth.create_user("brief@example.com", PASSWORD)
        browser = Browser(sm)
        await browser.login("brief@example.com")
        assert "signed in as" in (await browser.http.get("/auth/login")).text
        await asyncio.sleep(1.2)
        assert "signed in as" not in (await browser.http.get("/auth/login")).text
        assert UID_KEY not in browser.session()
        await browser.aclose()

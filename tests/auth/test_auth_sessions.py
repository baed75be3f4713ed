"""Sign-ins kept on the server (SQLite, in process): a copy of the session cookie taken while
signed in is a visitor's once the sign-in ends, whichever way it ends (sign-out, a new
password, expiry, "sign out everywhere"), and ending one never answers 500."""

from __future__ import annotations

import asyncio
import base64
import json

import itsdangerous
import pytest
from argon2 import PasswordHasher
from auth_kit import COOKIE, PASSWORD, Browser, make_app, running
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text

from starmodel import CallContext, Entity, event
from starmodel.adapters.driving.web.identity import SESSION_KEY
from starmodel.contrib.auth import UID_KEY, Passwords, SignIn, User, signed_in
from starmodel.contrib.auth.signin import sign_in_key
from starmodel.contrib.auth.testing import copy_cookie, sign_in, sign_out, sign_out_everywhere
from starmodel.core.errors import EntityNotFound, ValidationFailed
from starmodel.testing import EventClient


class Diary(Entity):
    """Per session; only a signed-in user may write in it."""

    model_config = {"namespace": "auth_diary"}
    lines: list[str] = []

    @event(allow=signed_in)
    def write(self, line: str):
        self.lines.append(line)


@pytest.fixture
async def app(tmp_path):
    sm, auth = make_app(tmp_path, Diary)
    sm.admin()

    @sm.app.route("/me")
    async def me(request):
        user = await auth.user(request)
        return auth.login_redirect(request) if user is None else f"signed in as {user.email}"

    async with running(sm):
        yield sm, auth


async def is_signed_in(browser) -> bool:
    """Whether the app sees a user on this browser's session (a page and an event agree)."""
    page = await browser.http.get("/me")
    event_answer = await browser.call(Diary.write, line="x")
    assert (page.status_code == 200) == event_answer.ok, (page.status_code, event_answer.status)
    assert event_answer.ok or event_answer.status == 403
    assert page.status_code in (200, 303)
    return page.status_code == 200


async def sign_ins_of(auth, user_id: int) -> int:
    table = auth.sm.services.database.table(SignIn)
    async with auth.sm.services.database.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.user_id == user_id)
        return int((await conn.execute(query)).scalar_one())


async def test_signing_out_ends_a_copy_of_the_cookie(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as browser:
        await sign_in(browser, "ada@example.com", PASSWORD)
        thief = copy_cookie(browser)
        assert await is_signed_in(thief) and await is_signed_in(browser)
        assert await sign_ins_of(auth, ada.id) == 1
        await sign_out(browser)
        assert not await is_signed_in(browser)
        assert not await is_signed_in(thief)
        assert await sign_ins_of(auth, ada.id) == 0
        admin = await thief.http.get("/admin")
        assert admin.status_code == 303 and admin.headers["location"].startswith("/auth/login")


async def test_a_new_password_ends_every_sign_in_and_the_new_one_works(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as laptop:
        phone = laptop.session()
        await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(phone, "ada@example.com", PASSWORD)
        thief = copy_cookie(laptop)
        assert await auth.set_password(ada, "a brand new passphrase") == 2
        for browser in (laptop, phone, thief):
            assert not await is_signed_in(browser)
        with pytest.raises(AssertionError, match="refused"):
            await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(laptop, "ada@example.com", "a brand new passphrase")
        assert await is_signed_in(laptop) and not await is_signed_in(thief)


async def test_a_password_changed_by_any_path_ends_the_older_sign_ins(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as browser:
        await sign_in(browser, "ada@example.com", PASSWORD)
        thief = copy_cookie(browser)
        await auth.store.set_password_hash(ada.id, await auth.passwords.hash("changed elsewhere"))
        assert not await is_signed_in(browser) and not await is_signed_in(thief)


async def test_set_password_refuses_a_bad_password_and_a_missing_user(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as browser:
        await sign_in(browser, "ada@example.com", PASSWORD)
        with pytest.raises(ValidationFailed) as refused:
            await auth.set_password(ada, "short")
        assert "password" in refused.value.errors
        assert await is_signed_in(browser)  # nothing changed
        with pytest.raises(EntityNotFound):
            await auth.set_password(User(id=999, email="ghost@example.com"), "long enough passphrase")


async def test_a_rehash_at_sign_in_keeps_the_other_sign_ins(app):
    sm, auth = app
    before = (await auth.create_user("ada@example.com", PASSWORD)).password_hash
    async with EventClient(sm, lifespan=False) as laptop:
        await sign_in(laptop, "ada@example.com", PASSWORD)
        stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1))
        auth.passwords = stronger  # the app's argon2 parameters went up
        phone = laptop.session()
        await sign_in(phone, "ada@example.com", PASSWORD)  # rehashed with the new parameters
        after = (await auth.store.by_email("ada@example.com")).password_hash
        assert after != before and not stronger.needs_rehash(after)
        assert await is_signed_in(laptop) and await is_signed_in(phone)


async def test_sign_out_everywhere_ends_every_browser_of_that_user_only(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    await auth.create_user("bob@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as laptop:
        phone, bob = laptop.session(), laptop.session()
        await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(phone, "ada@example.com", PASSWORD)
        await sign_in(bob, "bob@example.com", PASSWORD)
        copies = [copy_cookie(laptop), copy_cookie(phone)]
        assert await auth.sign_out_everywhere(ada) == 2
        for browser in (laptop, phone, *copies):
            assert not await is_signed_in(browser)
        assert await is_signed_in(bob)
        assert await auth.sign_out_everywhere(ada) == 0


async def test_staff_sign_a_user_out_everywhere_from_the_admin(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    await auth.create_user("boss@example.com", PASSWORD, staff=True)
    async with EventClient(sm, lifespan=False) as laptop:
        phone, boss = laptop.session(), laptop.session()
        await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(phone, "ada@example.com", PASSWORD)
        await sign_in(boss, "boss@example.com", PASSWORD)
        page = await boss.http.get(f"/admin/sm_user/{ada.id}")
        assert page.status_code == 200 and 'data-testid="auth-sign-out-everywhere"' in page.text
        assert f"/auth/users/{ada.id}/signout" in page.text
        await sign_out_everywhere(boss, ada.id)
        assert not await is_signed_in(laptop) and not await is_signed_in(phone)
        assert await is_signed_in(boss)
        sessions = await boss.http.get("/admin/sm_sign_in")
        assert sessions.status_code == 200 and "SignIn" in sessions.text


async def test_a_user_signs_themselves_out_everywhere(app):
    sm, auth = app
    await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as laptop:
        phone = laptop.session()
        await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(phone, "ada@example.com", PASSWORD)
        thief = copy_cookie(phone)
        await sign_out_everywhere(phone)
        for browser in (laptop, phone, thief):
            assert not await is_signed_in(browser)


async def test_who_may_not_sign_others_out_is_refused_and_nothing_ends(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    await auth.create_user("bob@example.com", PASSWORD)
    await auth.create_user("boss@example.com", PASSWORD, staff=True)
    async with EventClient(sm, lifespan=False) as laptop:
        bob, visitor, boss = laptop.session(), laptop.session(), laptop.session()
        await sign_in(laptop, "ada@example.com", PASSWORD)
        await sign_in(bob, "bob@example.com", PASSWORD)
        await sign_in(boss, "boss@example.com", PASSWORD)
        headers = {"Datastar-Request": "true", "Origin": "http://testserver"}
        path = auth.paths.sign_out_everywhere(ada.id)
        answers = {
            "other user": await bob.http.post(path, headers=headers),
            "visitor": await visitor.http.post(path, headers=headers),
            "other site": await laptop.http.post(path, headers={**headers, "Origin": "https://evil.example"}),
        }
        assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 403)
        assert await is_signed_in(laptop)
        for missing in ("999", "99999999999999999999", "-1", "x"):
            answer = await boss.http.post(auth.paths.sign_out_everywhere(missing), headers=headers)
            assert answer.status_code == 404, missing
        guess = await bob.http.post(auth.paths.sign_out_everywhere("999"), headers=headers)
        assert guess.status_code == 403  # who is not staff learns nothing about other ids
        assert (await bob.http.get(path)).status_code == 405  # never a GET
        assert await is_signed_in(laptop)


async def test_an_expired_sign_in_ends_every_copy(tmp_path):
    sm, auth = make_app(tmp_path, Diary, sign_in_for=1)
    async with running(sm):
        user = await auth.create_user("brief@example.com", PASSWORD)
        async with EventClient(sm, lifespan=False) as browser:
            await sign_in(browser, "brief@example.com", PASSWORD)
            thief = copy_cookie(browser)
            assert (await thief.call(Diary.write, line="in time")).ok
            await asyncio.sleep(1.1)
            assert (await thief.call(Diary.write, line="late")).status == 403
            assert (await browser.call(Diary.write, line="late")).status == 403
            assert await sign_ins_of(auth, user.id) == 0  # the expired row was removed


async def test_a_cookie_made_with_the_secret_key_is_still_not_signed_in(app):
    """Knowing SECRET_KEY lets one sign any cookie, but not make a sign-in the server holds."""
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    browser = Browser(sm)
    payload = base64.b64encode(json.dumps({SESSION_KEY: "made-up", UID_KEY: ada.id}).encode())
    forged = itsdangerous.TimestampSigner("auth-tests").sign(payload).decode()
    browser.http.cookies.set(COOKIE, forged, domain="testserver.local")
    assert (await browser.http.get("/me")).status_code == 303
    assert UID_KEY not in browser.session()
    await browser.aclose()


async def test_a_signed_out_sessions_live_streams_are_closed(app):
    sm, auth = app
    await auth.create_user("ada@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as browser:
        other = browser.session()
        await sign_in(browser, "ada@example.com", PASSWORD)
        thief = copy_cookie(browser)
        async with thief.watch(User) as stolen, other.watch() as unrelated:
            await sign_out(browser)
            await stolen.wait_for(lambda view: view.closed is not None, timeout=5)
            assert stolen.closed == "signed out" and unrelated.closed is None


async def test_signing_out_while_the_database_is_down_says_so_and_stays_signed_in(app):
    sm, auth = app
    await auth.create_user("ada@example.com", PASSWORD)
    browser = Browser(sm)
    await browser.login("ada@example.com")
    async with sm.services.database.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE sign_ins RENAME TO sign_ins_away"))
    try:
        answer = await browser.post_form("/auth/logout")
        assert answer.status_code == 503 and "Signing out is not possible" in answer.text
        assert UID_KEY in browser.session()
    finally:
        async with sm.services.database.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE sign_ins_away RENAME TO sign_ins"))
    assert (await browser.post_form("/auth/logout")).status_code == 200
    assert UID_KEY not in browser.session()
    await browser.aclose()


async def test_a_request_that_needs_its_user_reads_one_row(app):
    """The cost of server-side sign-ins: one query for a signed-in request (the sign-in joined
    with its user), none for a visitor."""
    sm, auth = app
    await auth.create_user("ada@example.com", PASSWORD)
    signed, visitor = Browser(sm), Browser(sm)
    await signed.login("ada@example.com")
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = sm.services.database.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        assert (await signed.http.get("/me")).text == "signed in as ada@example.com"
        assert len(statements) == 1 and "sign_ins" in statements[0] and "users" in statements[0]
        statements.clear()
        assert (await visitor.http.get("/me")).status_code == 303
        assert statements == []
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    await signed.aclose()
    await visitor.aclose()


async def test_staff_end_one_sign_in_by_deleting_its_row(app):
    sm, auth = app
    await auth.create_user("ada@example.com", PASSWORD)
    laptop, phone = Browser(sm), Browser(sm)
    await laptop.login("ada@example.com")
    await phone.login("ada@example.com")
    async with sm.dispatcher.uow_factory(SignIn) as uow:
        uow.remove(await uow.load(SignIn, sign_in_key(laptop.session()[SESSION_KEY])))
        await uow.commit(CallContext(session_id="staff"))
    assert (await laptop.http.get("/me")).status_code == 303
    assert (await phone.http.get("/me")).status_code == 200
    await laptop.aclose()
    await phone.aclose()


async def test_signing_in_as_somebody_else_ends_the_previous_sign_in(app):
    sm, auth = app
    ada = await auth.create_user("ada@example.com", PASSWORD)
    await auth.create_user("bob@example.com", PASSWORD)
    async with EventClient(sm, lifespan=False) as browser:
        await sign_in(browser, "ada@example.com", PASSWORD)
        thief = copy_cookie(browser)
        await sign_in(browser, "bob@example.com", PASSWORD)
        assert (await browser.http.get("/me")).text == "signed in as bob@example.com"
        assert not await is_signed_in(thief) and await sign_ins_of(auth, ada.id) == 0

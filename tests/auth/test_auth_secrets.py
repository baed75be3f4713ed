"""A password hash never leaves the server: not in a response body, header or signal, not on
the live stream, not on the bus, not in a log line (at DEBUG, database drivers included)."""

from __future__ import annotations

import logging

from auth_kit import PASSWORD, Browser, make_app, running

from starmodel import Entity, EntityChanged, event
from starmodel.contrib.auth import User, signed_in
from starmodel.contrib.auth.testing import sign_in
from starmodel.testing import EventClient


class Diary(Entity):
    model_config = {"namespace": "auth_diary"}
    lines: list[str] = []

    @event(allow=signed_in)
    def write(self, line: str):
        self.lines.append(line)


def _hash_parts(stored: str) -> list[str]:
    """The hash and its salt and digest on their own (a leak could carry either)."""
    return [stored, *stored.split("$")[-2:]]


async def test_the_hash_never_leaves_the_server(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sm, auth = make_app(tmp_path, Diary)
    facts: list[EntityChanged] = []

    async def keep(fact: EntityChanged) -> None:
        facts.append(fact)

    sm.subscribe(EntityChanged, keep)
    responses = []
    async with running(sm):
        browser = Browser(sm, responses)
        await browser.http.get("/auth/register")
        await browser.register("leak@example.com", name="Lee")
        await browser.http.get("/auth/login")
        await browser.post_form("/auth/logout")
        await browser.login("leak@example.com", "wrong wrong")
        await browser.login("nobody@example.com")
        await browser.login("leak@example.com")
        await browser.register("leak@example.com")  # taken
        async with EventClient(sm, lifespan=False) as client:
            client.http.event_hooks["response"].append(browser._keep)
            await sign_in(client, "leak@example.com", PASSWORD)
            assert (await client.call(Diary.write, line="dear diary")).ok
        await auth.create_user("staff@example.com", PASSWORD, staff=True)
        stored = [u.password_hash for u in await auth.store.page()]
        await browser.aclose()
    assert len(responses) >= 10
    secrets = [part for value in stored for part in _hash_parts(value)]
    for response in responses:
        wire = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        for secret in secrets:
            assert secret not in wire, f"{response.request.method} {response.request.url} carries a hash"
        assert "password_hash" not in wire and "is_staff" not in wire
    for fact in facts:
        assert "password_hash" not in fact.changes and "is_staff" not in fact.changes
    assert any(fact.namespace == "sm_user" and fact.created for fact in facts)
    logged = "\n".join(
        record.getMessage() + (caplog.text if record.exc_info else "") for record in caplog.records
    )
    assert "INSERT INTO users" in logged  # the drivers did log the statements, parameters redacted
    for secret in secrets:
        assert secret not in logged and secret not in caplog.text
    assert PASSWORD not in logged


async def test_the_user_entity_shows_no_server_only_field():
    user = User(email="x@example.com", password_hash="$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA")
    assert set(user.public_state()) == {"id", "email", "name", "created_at"}
    assert "argon2" not in repr(user) and "argon2" not in str(user.signals())
    assert "argon2" not in user.__html__()


async def test_no_visitor_watches_accounts_on_the_live_stream(tmp_path):
    sm, auth = make_app(tmp_path, Diary)
    async with EventClient(sm) as client:
        await auth.create_user("first@example.com", PASSWORD)
        assert sm.live_lists.watched_topics({"smwatch": {"sm_user": True}}, client.session_id) == set()
        stamps = sm.live_lists.watched_topics({"smwatch": {"sm_user": "stamp"}}, client.session_id)
        assert stamps == {"stamp:sm_user"}  # "something changed", no data: generated views refetch
        async with client.watch(User) as view:  # a tab asking for smwatch.sm_user
            await auth.create_user("second@example.com", PASSWORD)
            seen = str(view.events)
        assert "first@example.com" not in seen and "second@example.com" not in seen

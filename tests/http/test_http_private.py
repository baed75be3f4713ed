"""Private records (``model_config = {"private": True}``): a session reaches only the records
it created, whatever keys it sends; other sessions get 404 and change nothing."""

import pytest
from sm_http import asgi_client, parse_sse, post_event, state_signals
from sqlmodel import Field

from starmodel import Entity, StarModel, event


class Note(Entity, table=True):
    model_config = {"private": True, "namespace": "private_note"}
    id: int | None = Field(default=None, primary_key=True)
    text: str = ""
    pinned: bool = False

    @event
    def pin(self):
        self.pinned = True

    @event
    def write(cls, text: str):
        cls.records.add(Note(text=text))


@pytest.fixture
async def sm(tmp_path):
    sm = StarModel(entities=[Note], secret_key="test", database_url=f"sqlite:///{tmp_path}/p.db")

    @sm.app.route("/notes")
    async def notes(request):
        return " | ".join(n.text for n in await sm.list(Note, request))

    async with sm.app.router.lifespan_context(sm.app):
        yield sm


async def test_other_sessions_cannot_reach_a_private_record(sm):
    async with asgi_client(sm) as alice, asgi_client(sm) as mallory:
        created = await post_event(alice, "/private_note/write", text="alice's secret")
        (key,) = state_signals(parse_sse(created.text))["private_note"].keys() - {"_errors"}
        await post_event(mallory, "/private_note/write", text="mallory's note")

        refused = await post_event(mallory, "/private_note/pin", _key=key)
        assert refused.status_code == 404  # not 403: no hint that the record exists
        assert (await alice.get("/notes")).text == "alice's secret"
        assert (await mallory.get("/notes")).text == "mallory's note"
        stored = await sm.find(Note, key)
        assert stored is None  # without the owner's request, a private record is not visible

        accepted = await post_event(alice, "/private_note/pin", _key=key)
        assert accepted.status_code == 200
        assert state_signals(parse_sse(accepted.text))["private_note"][key] == {"pinned": True}


async def test_private_list_needs_the_request(sm):
    with pytest.raises(Exception, match="private: pass the page's request"):
        await sm.list(Note)


def test_a_session_watches_only_its_own_private_records(sm):
    watch = {"smwatch": {"private_note": True, "unknown_thing": True}}
    assert sm.live_lists.watched_topics(watch, "sid-a") == {"entity:private_note:sid-a"}
    assert sm.live_lists.watched_topics(watch, "sid-m") == {"entity:private_note:sid-m"}
    assert sm.live_lists.watched_topics({"smwatch": "junk"}, "sid-a") == set()

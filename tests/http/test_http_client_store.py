"""Browser-stored entities (CLIENT_LOCAL / CLIENT_SESSION) through the real ASGI app: the
state comes with each request, is checked against the schema, and is never trusted."""

from typing import Literal

import pytest
from sm_http import asgi_client, merged_signals, parse_sse, post_event

from starmodel import (
    ConfigurationError,
    Entity,
    EntityChanged,
    ServerOnly,
    StarModel,
    StateStore,
    computed,
    event,
)


class Prefs(Entity):
    model_config = {"store": StateStore.CLIENT_LOCAL}
    theme: Literal["light", "dark"] = "light"
    font_size: int = 16

    @computed
    def label(self) -> str:
        return f"{self.theme} {self.font_size}px"

    @event
    def bigger(self, step: int = 2):
        if self.font_size + step > 40:
            raise ValueError("40px at most")
        self.font_size += step

    @event
    def toggle(self):
        self.theme = "dark" if self.theme == "light" else "light"


class Draft(Entity):
    model_config = {"store": StateStore.CLIENT_SESSION}
    text: str = ""


RESTORE = "/_starmodel/client/prefs/restore"


@pytest.fixture
def sm() -> StarModel:
    return StarModel(entities=[Prefs, Draft], secret_key="client-store")


async def test_rendering_carries_the_restore_hooks(sm):
    html = Prefs().__html__()
    assert 'data-starmodel-client="prefs"' in html and 'data-starmodel-storage="local"' in html
    assert 'data-starmodel-fields="theme,font_size"' in html
    assert f"@post(&#x27;{RESTORE}&#x27;)" in html
    assert 'data-starmodel-storage="session"' in Draft().__html__()


async def test_restore_checks_what_the_browser_kept_and_adds_computed_values(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, RESTORE, {"prefs": {"theme": "dark", "font_size": 20}})
    assert answer.status_code == 200
    assert merged_signals(parse_sse(answer.text)) == {
        "prefs": {"theme": "dark", "font_size": 20, "label": "dark 20px"}
    }


async def test_restore_with_nothing_kept_gives_the_defaults(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, RESTORE, {})
    assert answer.status_code == 200
    assert merged_signals(parse_sse(answer.text))["prefs"]["theme"] == "light"


@pytest.mark.parametrize(
    ("kept", "field"),
    [
        ({"theme": "neon"}, "theme"),  # not one of the choices
        ({"font_size": "huge"}, "font_size"),  # wrong type
        ({"theme": "dark", "is_admin": True}, "is_admin"),  # unknown field
        ("just text", "prefs"),  # not an object at all
    ],
)
async def test_tampered_state_is_refused_and_reset_to_the_defaults(sm, kept, field):
    async with asgi_client(sm) as client:
        answer = await post_event(client, RESTORE, {"prefs": kept})
    assert answer.status_code == 422
    events = parse_sse(answer.text)
    reset = events[0].signals
    assert reset == {"prefs": {"theme": "light", "font_size": 16, "label": "light 16px"}}
    assert field in merged_signals(events)["prefs"]["_errors"]
    assert "invalid and has been reset" in answer.headers["x-starmodel-error"]


async def test_events_run_on_the_state_the_request_carries(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/prefs/bigger", {"prefs": {"theme": "dark", "font_size": 20}})
        assert answer.status_code == 200
        changed = parse_sse(answer.text)[0].signals["prefs"]
        assert changed == {"font_size": 22, "label": "dark 22px", "_errors": {"step": ""}}
        fresh = await post_event(client, "/prefs/toggle", {})  # nothing kept: the defaults
        assert parse_sse(fresh.text)[0].signals == {"prefs": {"theme": "dark", "label": "dark 16px"}}


async def test_an_event_on_tampered_state_runs_nothing_and_resets(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/prefs/bigger", {"prefs": {"theme": "dark", "font_size": "x"}})
    assert answer.status_code == 422
    assert parse_sse(answer.text)[0].signals["prefs"]["font_size"] == 16


async def test_event_validation_still_applies(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/prefs/bigger", {"prefs": {"font_size": 39}})
    assert answer.status_code == 422
    assert "40px at most" in answer.headers["x-starmodel-error"]


async def test_changes_of_browser_state_are_not_broadcast(sm):
    seen: list[EntityChanged] = []

    async def record(change: EntityChanged) -> None:
        seen.append(change)

    sm.subscribe(EntityChanged, record, everywhere=True)
    async with asgi_client(sm) as client:
        assert (await post_event(client, "/prefs/toggle", {})).status_code == 200
    assert seen == []


async def test_restore_of_an_unknown_or_server_entity_is_404(sm):
    async with asgi_client(sm) as client:
        assert (await post_event(client, "/_starmodel/client/nothing/restore", {})).status_code == 404
        no_header = await client.post(RESTORE, json={})
    assert no_header.status_code == 403


async def test_bad_json_body_is_a_400(sm):
    async with asgi_client(sm) as client:
        answer = await client.post(RESTORE, content=b"{not json", headers={"Datastar-Request": "true"})
    assert answer.status_code == 400


def test_server_only_fields_are_refused_in_client_stores():
    refused = "server-only fields \\(secret\\) cannot live in the browser"
    with pytest.raises(ConfigurationError, match=refused):
        class Leaky(Entity):
            model_config = {"store": StateStore.CLIENT_LOCAL, "namespace": "leaky"}
            secret: ServerOnly[str] = "x"


def test_client_stores_have_no_global_scope_or_ttl():
    with pytest.raises(ConfigurationError, match="scope must be 'session'"):
        class Shared(Entity):
            model_config = {"store": StateStore.CLIENT_LOCAL, "scope": "global", "namespace": "shared_c"}
    with pytest.raises(ConfigurationError, match="ttl does not apply"):
        class Expiring(Entity):
            model_config = {"store": StateStore.CLIENT_SESSION, "ttl": 5, "namespace": "expiring_c"}

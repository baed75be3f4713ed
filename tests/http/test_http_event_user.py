"""Who is signed in is looked up for an event only when something decides on it (its ``allow``
rule, its entity's policy, its ``rate``), and events are matched before every other route."""

from __future__ import annotations

from typing import Any

import pytest
from sm_http import asgi_client, parse_sse, post_event, state_signals

from starmodel import Entity, StarModel, event
from starmodel.adapters.driving.web.event_route import EventRoute

LOOKUPS: list[str] = []


async def from_header(request: Any) -> str | None:
    LOOKUPS.append(request.scope["path"])
    return request.headers.get("x-user")


def admins_only(ctx) -> bool:
    return ctx.user == "admin"


class Tally(Entity):
    model_config = {"namespace": "user_tally"}
    count: int = 0

    @event
    def bump(self) -> None:
        self.count += 1

    @event(allow=admins_only)
    def reset(self) -> None:
        self.count = 0

    @event(rate="100/minute")
    def limited(self) -> None:
        self.count += 10


class Ledger(Entity):
    model_config = {"namespace": "user_ledger", "policy": {"events": admins_only}}
    entries: int = 0

    @event
    def add(self) -> None:
        self.entries += 1


class Diary(Entity):
    model_config = {"namespace": "user_diary", "journal": True}
    pages: int = 0

    @event
    def write(self) -> None:
        self.pages += 1


class Memo(Entity):
    model_config = {"namespace": "user_memo", "scope": "id"}
    text: str = ""


@pytest.fixture
def sm():
    app = StarModel(entities=[Tally, Ledger, Diary, Memo], secret_key="event-user-test")
    app.user_loader = from_header
    LOOKUPS.clear()
    return app


async def test_an_event_no_rule_decides_on_runs_without_looking_the_user_up(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/user_tally/bump", headers={"X-User": "someone"})
        assert answer.status_code == 200 and state_signals(parse_sse(answer.text))["user_tally"]["count"] == 1
    assert LOOKUPS == []


@pytest.mark.parametrize("path, refused", [
    ("/user_tally/reset", True),  # its own allow rule
    ("/user_ledger/add", True),  # its entity's policy
    ("/user_tally/limited", False),  # its rate is counted per user
])
async def test_an_event_whose_rule_policy_or_rate_needs_the_user_looks_it_up_once(sm, path, refused):
    async with asgi_client(sm) as client:
        visitor = await post_event(client, path)
        admin = await post_event(client, path, headers={"X-User": "admin"})
    assert [path, path] == LOOKUPS
    assert (visitor.status_code == 403) is refused
    assert admin.status_code in (200, 204)  # 204: nothing changed


async def test_events_are_matched_first_whatever_the_app_adds_in_front(sm):
    sm.crud(Memo)  # generated pages and API put their routes in front of the app's own
    sm.admin()
    routes = sm.app.router.routes
    assert isinstance(routes[0], EventRoute)
    assert sum(isinstance(r, EventRoute) for r in routes) == 1
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/user_ledger/add", headers={"X-User": "admin"})
        assert answer.status_code == 200
        assert state_signals(parse_sse(answer.text))["user_ledger"]["entries"] == 1
        assert (await client.get("/_starmodel/health")).status_code == 200


async def test_an_event_on_a_journaled_entity_looks_the_user_up_to_name_the_actor(sm):
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/user_diary/write", headers={"X-User": "admin"})
        assert answer.status_code == 200
    assert LOOKUPS == ["/user_diary/write"]
    entries = await sm.journal.history(Diary)
    assert len(entries) == 1 and "admin" in str(entries[0].actor)

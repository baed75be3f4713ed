"""The admin's History view of a journaled record, over HTTP in process (SQLite and
PostgreSQL): the entries, the undo button's route (200, then the values are back), a refused
undo (409 and the reason), the gate and the entity's policy, bad input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import Field

from starmodel import Entity, StarModel, event
from starmodel.core.context import CallContext
from tests.http.sm_http import DATASTAR, asgi_client, parse_sse

pytestmark = pytest.mark.asyncio


@dataclass
class Person:
    name: str
    is_staff: bool = False


PEOPLE = {
    "ann": Person("ann"), "boss": Person("boss", is_staff=True), "clerk": Person("clerk", is_staff=True),
}


def not_clerk(ctx: CallContext) -> bool:
    return getattr(ctx.user, "name", "") != "clerk"


class Memo(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = ""
    body: str = ""
    model_config = {  # type: ignore[typeddict-unknown-key]
        "journal": True, "namespace": "ja_memo", "policy": {"read": True, "update": not_clerk, "*": True},
    }

    @event
    def rename(self, title: str) -> None:
        self.title = title

    @event
    def write(self, body: str) -> None:
        self.body = body


class Plain(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = ""
    model_config = {"namespace": "ja_plain"}  # type: ignore[typeddict-unknown-key]


@pytest.fixture
async def app(database_url: str, tmp_path: Any) -> Any:
    sm = StarModel(entities=[Memo, Plain], database_url=database_url, secret_key="journal-admin",
                   migrations_dir=str(tmp_path / "none"))

    async def user_from_header(request: Any) -> Person | None:
        return PEOPLE.get(request.headers.get("x-test-user", ""))

    sm.user_loader = user_from_header
    sm.admin()
    async with sm.app.router.lifespan_context(sm.app):
        async with sm.dispatcher.uow_factory(Memo) as uow:
            uow.add(Memo(title="draft"))
            await uow.commit(CallContext(session_id="server"))
        await sm.call(Memo, "rename", key=1, title="final")
        await sm.call(Memo, "write", key=1, body="text")
        await sm.call(Memo, "rename", key=1, title="<b>last</b>")
        yield sm


@pytest.fixture
async def client(app: StarModel) -> Any:
    async with asgi_client(app) as client:
        yield client


BOSS = {"x-test-user": "boss"}


async def undo(client: httpx.AsyncClient, entry: str | None = None, user: str = "boss") -> httpx.Response:
    query = f"?entry={entry}" if entry is not None else ""
    return await client.post(f"/admin/ja_memo/1/history/undo{query}",
                             headers={**DATASTAR, "x-test-user": user}, json={})


async def test_the_history_page_lists_entries_with_their_changes(client: httpx.AsyncClient) -> None:
    detail = await client.get("/admin/ja_memo/1", headers=BOSS)
    assert detail.status_code == 200 and 'href="/admin/ja_memo/1/history"' in detail.text
    page = await client.get("/admin/ja_memo/1/history", headers=BOSS)
    assert page.status_code == 200
    assert page.text.count('data-testid="sm-history-entry"') == 4
    assert "rename" in page.text and "write" in page.text and "(create)" in page.text
    assert "&lt;b&gt;last&lt;/b&gt;" in page.text and "<b>last</b>" not in page.text  # escaped
    assert 'data-testid="sm-undo-4"' in page.text


async def test_undo_from_the_admin_restores_and_a_refused_one_says_why(
    app: StarModel, client: httpx.AsyncClient
) -> None:
    refused = await undo(client, "2")
    assert refused.status_code == 409, refused.text
    assert "title changed later, by rename" in refused.headers["x-starmodel-error"]
    assert (await app.find(Memo, 1, None)).title == "<b>last</b>"  # type: ignore[arg-type, union-attr]

    done = await undo(client, "4")
    assert done.status_code == 200
    events = parse_sse(done.text)
    assert any("/admin/ja_memo/1/history" in "".join(e.data) for e in events)
    memo = await _memo(app)
    assert (memo.title, memo.body) == ("final", "text")
    page = await client.get("/admin/ja_memo/1/history", headers=BOSS)
    assert "undone by #5" in page.text and "undoes #4" in page.text

    latest = await undo(client)  # no entry: the latest change not undone yet (write)
    assert latest.status_code == 200
    assert (await _memo(app)).body == ""


async def test_history_follows_the_gate_and_the_policy(app: StarModel, client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/ja_memo/1/history")).status_code == 403
    assert (await client.get("/admin/ja_memo/1/history", headers={"x-test-user": "ann"})).status_code == 403
    assert (await undo(client, "4", user="ann")).status_code == 403
    clerk_page = await client.get("/admin/ja_memo/1/history", headers={"x-test-user": "clerk"})
    assert clerk_page.status_code == 200 and "sm-undo-" not in clerk_page.text  # may read, not update
    assert (await undo(client, "4", user="clerk")).status_code == 403
    assert (await _memo(app)).title == "<b>last</b>"


async def test_bad_history_requests_are_clear_4xx(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/ja_plain/1/history", headers=BOSS)).status_code == 404
    assert (await client.get("/admin/nothing/1/history", headers=BOSS)).status_code == 404
    assert (await undo(client, "../../x")).status_code == 422
    assert (await undo(client, "999")).status_code == 404
    missing = await client.post("/admin/ja_memo/77/history/undo", headers={**DATASTAR, **BOSS}, json={})
    assert missing.status_code == 404
    empty = await client.get("/admin/ja_memo/77/history", headers=BOSS)
    assert empty.status_code == 200 and "sm-history-empty" in empty.text
    no_header = await client.post("/admin/ja_memo/1/history/undo?entry=4", headers=BOSS, json={})
    assert no_header.status_code == 403


async def _memo(app: StarModel) -> Memo:
    async with app.dispatcher.uow_factory(Memo) as uow:
        return await uow.load(Memo, "1")

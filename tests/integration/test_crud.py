"""Generated CRUD over HTTP on real databases (a SQLite file and PostgreSQL): the JSON API round
trip, validation errors, policies, version checks, list queries (search, sort, pages), the
generated pages and their form actions, the admin gate, the OpenAPI document, and live
refreshes of generated views."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import httpx
import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlmodel import Field

from starmodel import Entity, FieldUI, ServerOnly, StarModel, event, toast
from starmodel.core.context import CallContext
from tests.http.sm_http import DATASTAR, asgi_client, live_server, open_stream, parse_sse

pytestmark = pytest.mark.asyncio


class Shelf(StrEnum):
    top = "top"
    bottom = "bottom"


def member(ctx: CallContext) -> bool:
    return ctx.user is not None


def boss(ctx: CallContext) -> bool:
    return getattr(ctx.user, "is_staff", False) is True


class Gadget(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=2, max_length=40, description="What it is called")
    notes: Annotated[str, FieldUI(widget="textarea")] = ""
    price: Decimal = Field(default=Decimal("0"), ge=0, max_digits=8, decimal_places=2)
    stock: int = Field(default=0, ge=0)
    shelf: Shelf = Shelf.top
    fragile: bool = False
    arrived: date | None = None
    secret: ServerOnly[str] = "hidden-gadget-value"

    model_config = {"policy": {"read": True, "create": member, "update": member, "delete": boss}}  # type: ignore[assignment]

    @event
    def restock(self, amount: int) -> Any:
        self.stock += amount
        return toast(f"{self.stock} now")


@dataclass
class Person:
    name: str
    is_staff: bool = False


PEOPLE = {"ann": Person("ann"), "boss": Person("boss", is_staff=True)}


def make_app(database_url: str) -> StarModel:
    sm = StarModel(entities=[Gadget], database_url=database_url, secret_key="crud-tests")

    async def user_from_header(request: Any) -> Person | None:
        return PEOPLE.get(request.headers.get("x-test-user", ""))

    sm.user_loader = user_from_header
    sm.crud(Gadget)
    sm.admin()
    return sm


@pytest.fixture
async def app(database_url: str) -> Any:
    sm = make_app(database_url)
    async with sm.app.router.lifespan_context(sm.app):
        yield sm


@pytest.fixture
async def client(app: StarModel) -> Any:
    async with asgi_client(app) as client:
        yield client


def as_user(name: str) -> dict[str, str]:
    return {"x-test-user": name, "content-type": "application/json"}


async def create(client: httpx.AsyncClient, **values: Any) -> dict[str, Any]:
    response = await client.post("/api/gadgets", json=values, headers=as_user("ann"))
    assert response.status_code == 201, response.text
    return response.json()


async def count(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/gadgets")).json()["total"]


# --- JSON API ----------------------------------------------------------------------------


async def test_api_round_trip(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/api/gadgets",
        headers=as_user("ann"),
        json={"name": "Lamp", "price": "12.50", "shelf": "bottom", "arrived": "2026-11-30"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "Lamp" and body["shelf"] == "bottom" and body["arrived"] == "2026-11-30"
    assert made.headers["location"] == f"/api/gadgets/{body['id']}"
    assert made.headers["etag"] == '"1"'
    key = body["id"]

    read = await client.get(f"/api/gadgets/{key}")
    assert read.status_code == 200 and Decimal(read.json()["price"]) == Decimal("12.50")

    changed = await client.patch(f"/api/gadgets/{key}", json={"stock": 4}, headers=as_user("ann"))
    assert changed.status_code == 200 and changed.json()["stock"] == 4
    assert changed.headers["etag"] == '"2"'
    assert (await client.get(f"/api/gadgets/{key}")).json()["stock"] == 4

    replaced = await client.put(
        f"/api/gadgets/{key}", json={"name": "Big lamp", "stock": 5}, headers=as_user("ann")
    )
    assert replaced.status_code == 200 and replaced.json()["name"] == "Big lamp"

    gone = await client.delete(f"/api/gadgets/{key}", headers=as_user("boss"))
    assert gone.status_code == 204
    assert (await client.get(f"/api/gadgets/{key}")).status_code == 404
    assert await count(client) == 0


async def test_api_never_shows_or_takes_server_only_fields(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Safe")
    assert "secret" not in made
    listed = await client.get("/api/gadgets")
    assert "hidden-gadget-value" not in listed.text and "secret" not in listed.text
    refused = await client.patch(f"/api/gadgets/{made['id']}", json={"secret": "x"}, headers=as_user("ann"))
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"secret": "This field cannot be set here"}


async def test_api_validation_errors_are_422_with_field_details(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        "/api/gadgets",
        headers=as_user("ann"),
        json={"name": "x", "price": "-1", "shelf": "middle", "stock": "many"},
    )
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert set(errors) == {"name", "price", "shelf", "stock"}
    assert "at least 2" in errors["name"] and "greater than or equal to 0" in errors["price"]
    missing = await client.post("/api/gadgets", json={}, headers=as_user("ann"))
    assert missing.status_code == 422 and missing.json()["errors"]["name"] == "Field required"
    unknown = await client.post("/api/gadgets", json={"name": "ok", "colour": "red"}, headers=as_user("ann"))
    assert unknown.status_code == 422 and unknown.json()["errors"] == {
        "colour": "This field cannot be set here"
    }
    made = await create(client, name="Valid")
    bad_patch = await client.patch(f"/api/gadgets/{made['id']}", json={"stock": -3}, headers=as_user("ann"))
    assert bad_patch.status_code == 422 and "stock" in bad_patch.json()["errors"]
    assert (await client.get(f"/api/gadgets/{made['id']}")).json()["stock"] == 0
    assert await count(client) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b"name=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
        (b'{"name": "Fine"}', {"content-type": "text/plain"}, 415),
        (b'{"name": "Fine"}', {"content-type": "application/json", "origin": "https://evil.example"}, 403),
        (b'{"name": "Fine"}', {"content-type": "application/json", "sec-fetch-site": "cross-site"}, 403),
    ],
)
async def test_api_refuses_unreadable_or_cross_site_writes(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/api/gadgets", content=body, headers={"x-test-user": "ann", **headers})
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert await count(client) == 0


async def test_api_refuses_unauthorised_calls_and_changes_nothing(client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/api/gadgets", json={"name": "Nope"})
    assert anonymous.status_code == 401 and "Sign in" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"]
    made = await create(client, name="Kept")
    patched = await client.patch(f"/api/gadgets/{made['id']}", json={"stock": 9})
    assert patched.status_code == 401
    not_boss = await client.delete(f"/api/gadgets/{made['id']}", headers=as_user("ann"))
    assert not_boss.status_code == 403
    kept = (await client.get(f"/api/gadgets/{made['id']}")).json()
    assert kept["stock"] == 0 and kept["name"] == "Kept"


async def test_api_if_match_refuses_a_stale_version(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Shared")
    key = made["id"]
    first = await client.patch(
        f"/api/gadgets/{key}", json={"stock": 1}, headers={**as_user("ann"), "if-match": '"1"'}
    )
    assert first.status_code == 200
    stale = await client.patch(
        f"/api/gadgets/{key}", json={"stock": 2}, headers={**as_user("ann"), "if-match": '"1"'}
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.json()["detail"]
    bad = await client.patch(
        f"/api/gadgets/{key}", json={"stock": 2}, headers={**as_user("ann"), "if-match": "abc"}
    )
    assert bad.status_code == 400
    assert (await client.get(f"/api/gadgets/{key}")).json()["stock"] == 1


async def test_concurrent_api_updates_lose_no_write(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Counter")
    key = made["id"]

    async def bump(n: int) -> None:
        while True:
            current = await client.get(f"/api/gadgets/{key}")
            version = current.headers["etag"]
            answer = await client.patch(
                f"/api/gadgets/{key}",
                json={"stock": current.json()["stock"] + 1},
                headers={**as_user("ann"), "if-match": version},
            )
            if answer.status_code == 200:
                return
            assert answer.status_code == 412, answer.text

    await asyncio.gather(*(bump(n) for n in range(12)))
    assert (await client.get(f"/api/gadgets/{key}")).json()["stock"] == 12


async def test_api_lists_search_sort_and_pages(client: httpx.AsyncClient) -> None:
    for index, name in enumerate(["Walnut box", "Oak chair", "walnut TABLE", "Pine shelf", "Birch box"]):
        await create(client, name=name, stock=index * 10)
    found = (await client.get("/api/gadgets", params={"q": "walnut"})).json()
    assert sorted(i["name"] for i in found["items"]) == ["Walnut box", "walnut TABLE"] and found["total"] == 2
    by_name = (await client.get("/api/gadgets", params={"sort": "name"})).json()["items"]
    assert [i["name"] for i in by_name][:2] == ["Birch box", "Oak chair"]
    by_stock_down = (await client.get("/api/gadgets", params={"sort": "-stock", "per_page": 2})).json()
    assert [i["stock"] for i in by_stock_down["items"]] == [40, 30]
    assert by_stock_down["pages"] == 3 and by_stock_down["total"] == 5
    last = (await client.get("/api/gadgets", params={"sort": "-stock", "per_page": 2, "page": 3})).json()
    assert [i["stock"] for i in last["items"]] == [0]
    percent = (await client.get("/api/gadgets", params={"q": "%"})).json()
    assert percent["total"] == 0  # LIKE wildcards are searched for, not obeyed
    for params, field in [
        ({"sort": "secret"}, "sort"),
        ({"page": "0"}, "page"),
        ({"per_page": "1000"}, "per_page"),
        ({"page": "two"}, "page"),
        ({"colour": "red"}, "colour"),
    ]:
        refused = await client.get("/api/gadgets", params=params)
        assert refused.status_code == 422 and field in refused.json()["errors"], (params, refused.text)


async def test_openapi_document_is_valid(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    validate_openapi(document)
    assert {"/api/gadgets", "/api/gadgets/{key}"} <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert "secret" not in schemas["Gadget"]["properties"] and "name" in schemas["Gadget"]["properties"]
    assert "id" not in schemas["GadgetCreate"]["properties"]
    assert schemas["GadgetCreate"]["required"] == ["name"]
    assert "Shelf" in schemas  # the enum, referenced from the record's schemas
    assert "hidden-gadget-value" not in json.dumps(document)


# --- pages and form actions --------------------------------------------------------------


def form_post(path: str, values: dict[str, Any], form: str = "gadget_new") -> dict[str, Any]:
    return {
        "url": path,
        "content": json.dumps({"smform": {form: values}}),
        "headers": {**DATASTAR, "content-type": "application/json", "x-test-user": "ann"},
    }


async def test_generated_pages_render(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Shown <b>escaped</b>", notes="long text")
    listed = await client.get("/gadgets")
    assert listed.status_code == 200
    assert "Shown &lt;b&gt;escaped&lt;/b&gt;" in listed.text and "<b>escaped</b>" not in listed.text
    assert "hidden-gadget-value" not in listed.text
    new = await client.get("/gadgets/new", headers={"x-test-user": "ann"})
    assert new.status_code == 200
    page = new.text
    assert 'type="number"' in page and 'min="0"' in page and 'step="0.01"' in page
    assert "<textarea" in page and 'type="checkbox"' in page and 'type="date"' in page and "<select" in page
    assert "What it is called" in page and 'aria-required="true"' in page
    assert "secret" not in page
    detail = await client.get(f"/gadgets/{made['id']}", headers={"x-test-user": "ann"})
    assert detail.status_code == 200 and "long text" in detail.text and "event-restock" in detail.text
    edit = await client.get(f"/gadgets/{made['id']}/edit", headers={"x-test-user": "ann"})
    assert edit.status_code == 200 and "Save changes" in edit.text
    assert (await client.get("/gadgets/999999")).status_code == 404
    assert (await client.get("/gadgets/not-a-number")).status_code == 404
    assert (await client.get("/gadgets?sort=nothing")).status_code == 400
    assert (await client.get("/gadgets?page=x")).status_code == 400


async def test_pages_need_the_policy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/gadgets/new")).status_code == 403  # no auth plugin: no login page to go to


async def test_form_create_shows_errors_inline_and_saves_nothing(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        **form_post(
            "/_starmodel/ui/gadget/create?then=detail",
            {"name": "x", "price": "-2", "stock": "", "shelf": "top"},
        )
    )
    assert refused.status_code == 422
    events = parse_sse(refused.text)
    errors = events[0].signals["smform"]["gadget_new"]["_errors"]
    assert "at least 2" in errors["name"] and "greater than or equal" in errors["price"]
    assert errors["stock"] == "" and errors["shelf"] == ""
    assert await count(client) == 0

    saved = await client.post(
        **form_post(
            "/_starmodel/ui/gadget/create?then=detail",
            {
                "name": "Kettle",
                "price": "20",
                "stock": "3",
                "shelf": "bottom",
                "fragile": True,
                "arrived": "",
                "notes": "",
            },
        )
    )
    assert saved.status_code == 200, saved.text
    assert "window.location.assign" in saved.text and "/gadgets/" in saved.text
    item = (await client.get("/api/gadgets")).json()["items"][0]
    assert (
        item["name"] == "Kettle"
        and item["stock"] == 3
        and item["fragile"] is True
        and item["arrived"] is None
    )


async def test_live_validation_reports_one_field(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        **form_post("/_starmodel/ui/gadget/validate?form=new&field=name", {"name": "y"})
    )
    assert answer.status_code == 200
    assert parse_sse(answer.text)[0].signals == {
        "smform": {"gadget_new": {"_errors": {"name": "String should have at least 2 characters"}}}
    }
    fine = await client.post(
        **form_post("/_starmodel/ui/gadget/validate?form=new&field=name", {"name": "yes"})
    )
    assert parse_sse(fine.text)[0].signals["smform"]["gadget_new"]["_errors"] == {"name": ""}
    unknown = await client.post(**form_post("/_starmodel/ui/gadget/validate?form=new&field=secret", {}))
    assert unknown.status_code == 422


async def test_form_update_checks_the_version(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Drawn")
    key = made["id"]
    await client.patch(f"/api/gadgets/{key}", json={"stock": 5}, headers=as_user("ann"))  # someone else
    stale = await client.post(
        **form_post(
            f"/_starmodel/ui/gadget/update?key={key}&version=1&then=detail", {"name": "Mine"}, "gadget_edit"
        )
    )
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    current = await client.post(
        **form_post(
            f"/_starmodel/ui/gadget/update?key={key}&version=2&then=detail", {"name": "Mine"}, "gadget_edit"
        )
    )
    assert current.status_code == 200
    record = (await client.get(f"/api/gadgets/{key}")).json()
    assert record["name"] == "Mine" and record["stock"] == 5


@pytest.mark.parametrize(
    "path",
    [
        "/_starmodel/ui/gadget/create?then=elsewhere",
        "/_starmodel/ui/gadget/update?then=detail",
        "/_starmodel/ui/gadget/update?key=1&version=new",
        "/_starmodel/ui/gadget/validate?form=other&field=name",
    ],
)
async def test_form_actions_refuse_bad_requests(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.post(**form_post(path, {"name": "Whatever"}))
    assert 400 <= answer.status_code < 500, answer.text
    assert await count(client) == 0


async def test_form_actions_refuse_cross_site_and_unknown_entities(client: httpx.AsyncClient) -> None:
    no_header = await client.post(
        "/_starmodel/ui/gadget/create", json={"smform": {"gadget_new": {"name": "Xx"}}}
    )
    assert no_header.status_code == 403
    evil = await client.post(
        **{
            **form_post("/_starmodel/ui/gadget/create", {"name": "Xx"}),
            "headers": {**DATASTAR, "origin": "https://evil.example", "x-test-user": "ann"},
        }
    )
    assert evil.status_code == 403
    unknown = await client.post(**form_post("/_starmodel/ui/nothing/create", {"name": "Xx"}))
    assert unknown.status_code == 404
    anonymous = await client.post(
        **{
            **form_post("/_starmodel/ui/gadget/create", {"name": "Xx"}),
            "headers": {**DATASTAR, "content-type": "application/json"},
        }
    )
    assert anonymous.status_code == 403
    assert await count(client) == 0


async def test_form_delete_needs_the_delete_rule(client: httpx.AsyncClient) -> None:
    made = await create(client, name="Precious")
    path = f"/_starmodel/ui/gadget/delete?key={made['id']}&then=list"
    denied = await client.post(**form_post(path, {}))
    assert denied.status_code == 403
    assert await count(client) == 1
    allowed = await client.post(**{**form_post(path, {}), "headers": {**DATASTAR, "x-test-user": "boss"}})
    assert allowed.status_code == 200 and "/gadgets" in allowed.text
    assert await count(client) == 0


# --- admin -------------------------------------------------------------------------------


async def test_admin_needs_staff(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin")).status_code == 403
    assert (await client.get("/admin", headers={"x-test-user": "ann"})).status_code == 403
    assert (await client.get("/admin/gadget", headers={"x-test-user": "ann"})).status_code == 403
    refused = await client.post(
        "/admin/_ui/gadget/create?then=list",
        headers={**DATASTAR, "x-test-user": "ann"},
        json={"smform": {"gadget_new": {"name": "Sneaky"}}},
    )
    assert refused.status_code == 403
    assert await count(client) == 0
    await create(client, name="Listed")
    index = await client.get("/admin", headers={"x-test-user": "boss"})
    assert index.status_code == 200 and "Gadget" in index.text
    assert 'data-testid="admin-count-gadget">1<' in index.text
    listed = await client.get("/admin/gadget", headers={"x-test-user": "boss"})
    assert listed.status_code == 200 and "Listed" in listed.text
    assert (await client.get("/admin/nothing", headers={"x-test-user": "boss"})).status_code == 404


# --- live --------------------------------------------------------------------------------


async def test_generated_views_refresh_when_a_record_changes_elsewhere(database_url: str) -> None:
    sm = make_app(database_url)
    async with (
        live_server(sm) as base,
        httpx.AsyncClient(base_url=base) as viewer,
        httpx.AsyncClient(base_url=base) as editor,
    ):
        page = await viewer.get("/gadgets")
        assert '"smwatch": {"gadget": "stamp"}' in page.text
        watch = json.dumps({"smwatch": {"gadget": "stamp"}})
        async with open_stream(
            viewer, "GET", "/_starmodel/live", params={"datastar": watch}, headers=DATASTAR
        ) as stream:
            await asyncio.sleep(0.2)  # the stream is registered once its answer started
            made = await editor.post("/api/gadgets", json={"name": "Fresh"}, headers=as_user("ann"))
            assert made.status_code == 201
            event = await stream.next(timeout=5)
            while event.type != "datastar-patch-signals" or not event.signals:  # skip the opening state
                event = await stream.next(timeout=5)
            # only the stamp: generated views fetch themselves, no record values are pushed
            assert set(event.signals) == {"smlive"} and event.signals["smlive"]["gadget"]
            fragment = await viewer.get("/_starmodel/ui/gadget/list", headers=DATASTAR)
            assert "Fresh" in parse_sse(fragment.text)[0].elements

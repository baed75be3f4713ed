"""Generated views outside ``sm.crud``: in an app's own page (``sm.views``), with per-field
overrides, on memory records (lists scanned in memory), and the admin's pages for global and
session entities."""

import json
from dataclasses import dataclass

import pytest
from sm_http import DATASTAR, asgi_client, parse_sse

from starmodel import Entity, StarModel, event
from starmodel.ui import EntityViews, FieldView


class Tag(Entity):
    """Memory records (scope 'id'): no SQL, lists are scanned."""

    label: str = ""
    weight: int = 0
    model_config = {"scope": "id"}


class Banner(Entity):
    """One for everybody."""

    text: str = "Welcome"
    shown: bool = True
    model_config = {"scope": "global"}

    @event
    def hide(self):
        self.shown = False


class Basket(Entity):
    """One per session: the admin shows these, never changes them."""

    items: int = 0


def stars(view: FieldView, signal: str, input_id: str):
    from fasthtml.common import Input

    return Input(type="range", min="0", max="5", id=input_id, data_bind=signal, data_testid="stars")


class TagViews(EntityViews):
    columns = ("label", "weight")
    inputs = {"weight": stars}
    cells = {"label": lambda tag: f"#{tag.label}"}


@dataclass
class Staff:
    is_staff: bool = True


@pytest.fixture
async def sm():
    sm = StarModel(entities=[Tag, Banner, Basket], secret_key="views-tests")

    async def staff_from_header(request):
        return Staff() if request.headers.get("x-staff") else None

    sm.user_loader = staff_from_header
    views = sm.views(Tag, TagViews)
    sm.admin()

    @sm.app.route("/tags")
    async def tags(request):
        return views.form(), await views.table_for(request)

    async with sm.app.router.lifespan_context(sm.app):
        yield sm


def submit(values: dict, form: str = "tag_new") -> dict:
    return {"content": json.dumps({"smform": {form: values}}), "headers": {**DATASTAR, "x-staff": "1"}}


async def test_views_in_an_own_page_with_overrides(sm):
    async with asgi_client(sm) as client:
        page = await client.get("/tags")
        assert page.status_code == 200
        assert 'type="range"' in page.text and 'data-bind="smform.tag_new.weight"' in page.text
        assert "No tags yet." in page.text
        saved = await client.post("/_starmodel/ui/tag/create", **submit({"label": "red", "weight": "4"}))
        assert saved.status_code == 200
        signals = parse_sse(saved.text)[0].signals["smform"]["tag_new"]
        assert signals["label"] == "" and signals["weight"] == 0  # the form is reset for the next one
        assert "Tag created" in saved.text
        for label in ("blue", "green"):
            await client.post("/_starmodel/ui/tag/create", **submit({"label": label, "weight": "1"}))
        listed = await client.get("/tags", params={"q": "re", "sort": "label"})
        assert "#green" in listed.text and "#red" in listed.text and "#blue" not in listed.text
        assert listed.text.index("#green") < listed.text.index("#red")
        fragment = await client.get("/_starmodel/ui/tag/list", params={"sort": "weight", "desc": "1"},
                                    headers=DATASTAR)
        rows = parse_sse(fragment.text)[0].elements
        assert rows.index("#red") < rows.index("#blue")


async def test_admin_edits_a_global_entity_and_runs_its_events(sm):
    staff = {"x-staff": "1"}
    async with asgi_client(sm) as client:
        page = await client.get("/admin/banner", headers=staff)
        assert page.status_code == 200
        assert 'data-text="$banner.text"' in page.text  # its values follow its signals, live
        assert "event-hide" in page.text
        saved = await client.post("/admin/_ui/banner/update?key=global&then=stay",
                                  **submit({"text": "Sale today", "shown": True}, "banner_edit"))
        assert saved.status_code == 200, saved.text
        assert (await sm.load(Banner)).text == "Sale today"
        hidden = await client.post("/banner/hide", headers={**DATASTAR, **staff})
        assert hidden.status_code == 200 and (await sm.load(Banner)).shown is False


async def test_admin_shows_session_entities_read_only(sm):
    staff = {"x-staff": "1"}
    async with asgi_client(sm) as client:
        page = await client.get("/admin/basket", headers=staff)
        assert page.status_code == 200 and "sm-new" not in page.text
        refused = await client.post("/admin/_ui/basket/update?key=someone&then=stay",
                                    **submit({"items": 3}, "basket_edit"))
        assert refused.status_code == 403 and "cannot be changed here" in refused.text
        index = await client.get("/admin", headers=staff)
        assert 'data-testid="admin-count-tag">0<' in index.text
        assert 'data-testid="admin-count-banner">1<' in index.text

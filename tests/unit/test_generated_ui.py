"""The pieces of generated UI that need no server: inputs chosen from field types and
constraints, form values read back, entity policies, and the record service on the memory
store (create / update / delete through the unit of work, policies, version checks, queries
scanned in memory)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Annotated, Literal

import pytest
from fasthtml.common import to_xml
from pydantic import Field

from starmodel import (
    CallContext,
    ConcurrencyError,
    ConfigurationError,
    Entity,
    EntityNotFound,
    FieldUI,
    PermissionDenied,
    ServerOnly,
    ValidationFailed,
)
from starmodel.adapters.driven.stores.memory import MemoryRepository, MemoryStore
from starmodel.adapters.driven.stores.queries import ScanRecordFinder
from starmodel.adapters.driving.ui.fields import (
    field_view,
    form_values,
    format_value,
    input_value,
    render_control,
)
from starmodel.adapters.driving.ui.views import _page_numbers, plural
from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.app.crud import CrudService
from starmodel.app.dispatcher import Dispatcher
from starmodel.app.uow import UnitOfWork
from starmodel.core.fields import editable_fields, searchable_fields, sortable_fields
from starmodel.core.queries import ListQuery
from tests.unit.fakes import RecordingBus


class Colour(StrEnum):
    red = "red"
    blue = "blue"


class Level(IntEnum):
    low = 1
    high = 2


class Everything(Entity):
    title: str = Field(min_length=3, max_length=50, title="Headline", description="Shown on top")
    body: str = Field(default="", max_length=5000)
    summary: Annotated[str, FieldUI(widget="textarea", placeholder="A few words")] = ""
    email: str = ""
    count: int = Field(default=0, ge=0, le=10)
    ratio: float = 0.5
    price: Decimal = Field(default=Decimal("1.00"), decimal_places=2)
    active: bool = True
    colour: Colour = Colour.red
    level: Level = Level.low
    size: Literal["S", "M", "L"] = "M"
    due: date | None = None
    at: datetime | None = None
    alarm: time | None = None
    tags: list[str] = []
    note: str | None = None
    token: ServerOnly[str] = "t"
    model_config = {"scope": "id"}


def test_inputs_follow_types_and_constraints() -> None:
    kinds = {name: field_view(Everything, name).kind for name in Everything.model_fields}
    assert kinds == {
        "title": "text",
        "body": "textarea",
        "summary": "textarea",
        "email": "email",
        "count": "number",
        "ratio": "number",
        "price": "number",
        "active": "checkbox",
        "colour": "select",
        "level": "select",
        "size": "select",
        "due": "date",
        "at": "datetime-local",
        "alarm": "time",
        "tags": "json",
        "note": "text",
        "token": "text",
    }
    title = field_view(Everything, "title")
    assert title.label == "Headline" and title.help == "Shown on top" and title.required
    assert title.attrs == {"minlength": "3", "maxlength": "50"}
    count = field_view(Everything, "count")
    assert count.attrs == {"min": "0", "max": "10", "step": "1"} and not count.required
    assert field_view(Everything, "price").attrs["step"] == "0.01"
    assert field_view(Everything, "level").choices == [("1", "Low"), ("2", "High")]
    assert field_view(Everything, "size").choices == [("S", "S"), ("M", "M"), ("L", "L")]
    assert field_view(Everything, "summary").placeholder == "A few words"
    assert field_view(Everything, "note").optional


def test_controls_are_bound_to_their_form_signal() -> None:
    html = to_xml(
        render_control(
            field_view(Everything, "title"), "smform.x_new.title", input_id="t", on_input="@post('/v')"
        )
    )
    assert 'data-bind="smform.x_new.title"' in html and "required" in html and 'minlength="3"' in html
    assert "data-on:input__debounce.400ms" in html
    select = to_xml(
        render_control(field_view(Everything, "colour"), "s", input_id="c", on_input="@post('/v')")
    )
    assert "<select" in select and 'value="blue"' in select and "data-on:change" in select
    assert 'type="checkbox"' in to_xml(render_control(field_view(Everything, "active"), "s", input_id="a"))


def test_values_shown_and_read_back() -> None:
    views = [
        field_view(Everything, name) for name in ("count", "note", "colour", "level", "tags", "due", "title")
    ]
    raw = {
        "count": "",
        "note": "  ",
        "colour": "blue",
        "level": "2",
        "tags": '["a", "b"]',
        "due": "",
        "title": "",
        "unknown": "x",
    }
    assert form_values(views, raw) == {
        "note": None,
        "colour": "blue",
        "level": 2,
        "tags": ["a", "b"],
        "due": None,
        "title": "",
    }
    assert form_values(views, "not a dict") == {}
    assert input_value(field_view(Everything, "at"), datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04"
    assert input_value(field_view(Everything, "price"), Decimal("2.50")) == "2.50"
    assert input_value(field_view(Everything, "active"), None) is False
    assert format_value(field_view(Everything, "active"), True) == "Yes"
    assert format_value(field_view(Everything, "level"), Level.high) == "High"


def test_field_facts() -> None:
    assert "token" not in editable_fields(Everything, creating=True)
    assert "token" not in sortable_fields(Everything) and "tags" not in sortable_fields(Everything)
    assert searchable_fields(Everything) == ["title", "body", "summary", "email", "note"]
    assert plural("category") == "categories" and plural("box") == "boxes" and plural("day") == "days"
    assert _page_numbers(5, 9) == [1, None, 4, 5, 6, None, 9]
    assert _page_numbers(1, 1) == [1]


# --- policies ----------------------------------------------------------------------------


def test_policy_rules_are_checked_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):

        class Wrong(Entity):
            model_config = {"policy": {"write": True}}  # type: ignore[dict-item]

    with pytest.raises(ConfigurationError, match="True, False or a function"):

        class Odd(Entity):
            model_config = {"policy": {"read": "yes"}}  # type: ignore[dict-item]

    with pytest.raises(ConfigurationError, match="must be a dict"):

        class Flat(Entity):
            model_config = {"policy": True}  # type: ignore[typeddict-item]


def test_policy_default_and_star() -> None:
    class Open(Entity):
        pass

    class Guarded(Entity):
        model_config = {"policy": {"read": True, "*": lambda ctx: ctx.user == "admin"}}  # type: ignore[dict-item]

    anonymous, admin = CallContext("s"), CallContext("s", user="admin")
    assert Open.permits("delete", anonymous)
    assert Guarded.permits("read", anonymous)
    assert not Guarded.permits("update", anonymous) and Guarded.permits("update", admin)


# --- the record service over the fake repository -----------------------------------------


def owner_only(ctx: CallContext) -> bool:
    return ctx.entity is None or getattr(ctx.entity, "owner", None) == ctx.user


class Note(Entity):
    text: str = Field(min_length=1)
    owner: str = ""
    model_config = {"scope": "id", "policy": {"update": owner_only, "delete": owner_only}}  # type: ignore[dict-item]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def repository(store: MemoryStore) -> MemoryRepository:
    return MemoryRepository(store)


@pytest.fixture
def service(store: MemoryStore) -> CrudService:
    bus = RecordingBus()
    dispatcher = Dispatcher(lambda cls: UnitOfWork(MemoryRepository(store), bus), read_json=read_json)
    return CrudService(dispatcher, lambda cls: ScanRecordFinder(lambda: MemoryRepository(store)))


async def test_create_update_delete_and_policies(
    service: CrudService, repository: MemoryRepository
) -> None:
    ann, bob = CallContext("s1", user="ann"), CallContext("s2", user="bob")
    note = await service.create(Note, {"text": "hello", "owner": "ann"}, ann)
    key = note._sm_key or ""
    assert await repository.get(Note, key) is not None
    with pytest.raises(ValidationFailed) as refused:
        await service.create(Note, {"text": ""}, ann)
    assert "text" in refused.value.errors
    with pytest.raises(PermissionDenied):
        await service.update(Note, key, {"text": "bob was here"}, bob)
    assert (await service.get(Note, key, ann)).text == "hello"
    updated = await service.update(Note, key, {"text": "hi"}, ann, version=1)
    assert updated.text == "hi" and updated._sm_version == 2
    with pytest.raises(ConcurrencyError):
        await service.update(Note, key, {"text": "stale"}, ann, version=1)
    with pytest.raises(ValidationFailed, match="cannot be set"):
        await service.update(Note, key, {"nope": 1}, ann)
    with pytest.raises(PermissionDenied):
        await service.delete(Note, key, bob)
    await service.delete(Note, key, ann)
    assert await repository.get(Note, key) is None
    with pytest.raises(EntityNotFound):
        await service.get(Note, key, ann)


async def test_queries_in_memory(service: CrudService) -> None:
    ctx = CallContext("s", user="ann")
    for text in ("pear", "Apple", "apricot", "banana"):
        await service.create(Note, {"text": text}, ctx)
    found = await service.page(Note, ListQuery(search="AP"), ctx)
    assert sorted(n.text for n in found.items) == ["Apple", "apricot"]
    ordered = await service.page(Note, ListQuery(sort="text", descending=True, per_page=3), ctx)
    assert [n.text for n in ordered.items] == ["pear", "banana", "apricot"] and ordered.pages == 2
    with pytest.raises(ValidationFailed):
        await service.page(Note, ListQuery(sort="owner_id"), ctx)
    with pytest.raises(ValidationFailed):
        await service.page(Note, ListQuery(per_page=0), ctx)

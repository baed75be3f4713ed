"""Facts about an entity's fields that generated screens and APIs need: which can be set,
sorted and searched, and their plain value type."""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, get_args, get_origin

if TYPE_CHECKING:
    from starmodel.core.entity import Entity

__all__ = [
    "FieldUI",
    "editable_fields",
    "is_optional",
    "plain_type",
    "public_fields",
    "searchable_fields",
    "sortable_fields",
    "ui_options",
]

_READ_ONLY_NAMES = ("created_at", "updated_at")
_SORTABLE = (str, int, float, bool, Decimal, date, datetime, time, Enum)


@dataclass(frozen=True)
class FieldUI:
    """How generated forms, lists and detail views show a field; put it in the annotation:
    ``description: Annotated[str, FieldUI(widget="textarea")] = ""``.

    Attributes:
        widget: ``textarea``, ``text``, ``email``, ``url``, ``password``, ``color`` ... (the
            default is chosen from the type and constraints).
        label: the label (default: the field's ``title``, else its name in words).
        help: a help line under the input (default: the field's ``description``).
        placeholder: the input's placeholder.
        readonly: shown but never set by forms or the API.
        list: shown as a column of generated lists.
    """

    widget: str | None = None
    label: str | None = None
    help: str | None = None
    placeholder: str | None = None
    readonly: bool = False
    list: bool = True


def ui_options(info: Any) -> dict[str, Any]:
    """A field's ``FieldUI`` (in its annotation) and ``json_schema_extra={"ui": {...}}``, merged."""
    options: dict[str, Any] = {}
    for item in info.metadata:
        if isinstance(item, FieldUI):
            options.update({k: v for k, v in asdict(item).items() if v is not None})
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    ui = extra.get("ui", {})
    if isinstance(ui, dict):
        options.update(ui)
    return options


def is_optional(annotation: Any) -> bool:
    """``X | None`` (or ``Optional[X]``)."""
    return get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in get_args(annotation)


def plain_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; other annotations as they are."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def public_fields(entity_cls: type[Entity]) -> list[str]:
    """Fields the browser may see (server-only ones left out)."""
    hidden = entity_cls.__starmodel_server_only__
    return [name for name in entity_cls.model_fields if name not in hidden]


def editable_fields(entity_cls: type[Entity], *, creating: bool) -> list[str]:
    """Fields a form or an API call may set: not server-only, not read-only (``created_at``,
    ``updated_at``, frozen, ``json_schema_extra={"ui": {"readonly": True}}``), and the primary
    key only when creating a record whose key has no default."""
    return list(_editable(entity_cls, creating))


def sortable_fields(entity_cls: type[Entity]) -> list[str]:
    """Public fields with values that order naturally (text, numbers, dates, enums)."""
    return list(_sortable(entity_cls))


def searchable_fields(entity_cls: type[Entity]) -> list[str]:
    """``model_config["search"]`` if given, else every public text field."""
    return list(_searchable(entity_cls))


# A class's fields never change once it is built: work them out once (lists are asked for on
# every list query and form action).


@lru_cache(maxsize=1024)
def _editable(entity_cls: type[Entity], creating: bool) -> tuple[str, ...]:
    pk = entity_cls.options().primary_key
    names = []
    for name in public_fields(entity_cls):
        info = entity_cls.model_fields[name]
        if info.frozen or ui_options(info).get("readonly"):
            continue
        if name == pk:
            if creating and info.is_required():
                names.append(name)
            continue
        if name in _READ_ONLY_NAMES and not info.is_required():
            continue
        names.append(name)
    return tuple(names)


@lru_cache(maxsize=1024)
def _sortable(entity_cls: type[Entity]) -> tuple[str, ...]:
    found = []
    for name in public_fields(entity_cls):
        kind = plain_type(entity_cls.model_fields[name].annotation)
        if inspect.isclass(kind) and issubclass(kind, _SORTABLE):
            found.append(name)
    return tuple(found)


@lru_cache(maxsize=1024)
def _searchable(entity_cls: type[Entity]) -> tuple[str, ...]:
    configured = entity_cls.__sm_raw_config__.get("search")
    if configured is not None:
        return tuple(str(name) for name in configured)
    fields = entity_cls.model_fields
    return tuple(name for name in public_fields(entity_cls) if plain_type(fields[name].annotation) is str)

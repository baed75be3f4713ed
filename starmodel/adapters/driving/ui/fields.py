"""From an entity field to what a generated screen shows: its input (chosen from the type and
constraints), label, help, required mark, and how a value is displayed and read back."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen, MultipleOf
from fasthtml.common import Input, Option, Select, Span, Textarea

from starmodel.adapters.driving.web.input_limits import read_json
from starmodel.core.entity import Entity
from starmodel.core.fields import is_optional, plain_type, ui_options
from starmodel.core.files import StoredFile

__all__ = [
    "FieldView",
    "field_view",
    "form_values",
    "format_value",
    "input_value",
    "render_control",
    "view_of",
]

LONG_TEXT = 200
"""Text fields allowing more characters than this get a textarea."""
_WORDS = re.compile(r"_+")


@dataclass
class FieldView:
    """What a form, a list column or a detail line needs to know about one field.

    Attributes:
        name: the field's name.
        label: its label (``FieldUI.label``, the field's ``title``, else its name in words).
        kind: the input kind: ``text``, ``textarea``, ``number``, ``checkbox``, ``select``,
            ``date``, ``datetime-local``, ``time``, ``email``...
        required: a value must be given (the field has no default).
        optional: ``None`` is a valid value.
        help: the help line under the input.
        placeholder: the input's placeholder.
        choices: ``(value, label)`` pairs of a select (enums and literals).
        attrs: the input's constraint attributes (``min``, ``max``, ``step``, ``minlength``,
            ``maxlength``).
        annotation: the field's type.
        in_list: shown as a column of generated lists.
    """

    name: str
    label: str
    kind: str  # text, textarea, number, checkbox, select, date, datetime-local, time, email, ...
    required: bool
    optional: bool  # None is a valid value
    help: str | None = None
    placeholder: str | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    attrs: dict[str, str] = field(default_factory=dict)  # min, max, step, minlength, maxlength
    annotation: Any = None
    in_list: bool = True


def _label(name: str) -> str:
    return _WORDS.sub(" ", name).strip().capitalize()


def _choices(kind: Any) -> list[tuple[str, str]] | None:
    if inspect.isclass(kind) and issubclass(kind, Enum):
        return [
            (str(m.value), _label(str(m.name).lower()) if isinstance(m.value, int) else str(m.value))
            for m in kind
        ]
    if get_origin(kind) is Literal:
        return [(str(v), str(v)) for v in get_args(kind)]
    return None


def field_view(entity_cls: type[Entity], name: str) -> FieldView:
    """The view of ``entity_cls.<name>``, from its annotation, constraints and metadata
    (``title``, ``description``, ``FieldUI``)."""
    view = view_of(name, entity_cls.model_fields[name])
    if view.kind == "file":  # uploads go to this entity's field
        from starmodel.adapters.driving.ui.file_fields import file_target_attrs

        view.attrs.update(file_target_attrs(entity_cls, name))
    return view


def view_of(name: str, info: Any) -> FieldView:
    """The view of a pydantic field (an entity's, or an event parameter's)."""
    options = ui_options(info)
    kind = plain_type(info.annotation)
    view = FieldView(
        name=name,
        label=options.get("label") or info.title or _label(name),
        kind="text",
        required=info.is_required(),
        optional=is_optional(info.annotation),
        help=options.get("help") or info.description,
        placeholder=options.get("placeholder"),
        annotation=kind,
        in_list=bool(options.get("list", True)),
    )
    max_length: int | None = None
    for item in info.metadata:
        if isinstance(item, Ge):
            view.attrs["min"] = str(item.ge)
        elif isinstance(item, Gt) and isinstance(item.gt, int):
            view.attrs["min"] = str(item.gt + 1)
        elif isinstance(item, Le):
            view.attrs["max"] = str(item.le)
        elif isinstance(item, Lt) and isinstance(item.lt, int):
            view.attrs["max"] = str(item.lt - 1)
        elif isinstance(item, MinLen) and item.min_length:
            view.attrs["minlength"] = str(item.min_length)
        elif isinstance(item, MaxLen):
            max_length = item.max_length
            view.attrs["maxlength"] = str(item.max_length)
        elif isinstance(item, MultipleOf):
            view.attrs["step"] = str(item.multiple_of)
        elif getattr(item, "decimal_places", None) is not None and "step" not in view.attrs:
            view.attrs["step"] = str(Decimal(1).scaleb(-int(item.decimal_places)))
    choices = _choices(kind)
    if choices is not None:
        view.kind, view.choices = "select", choices
    elif kind is bool:
        view.kind = "checkbox"
    elif inspect.isclass(kind) and issubclass(kind, int):
        view.kind = "number"
        view.attrs.setdefault("step", "1")
    elif inspect.isclass(kind) and issubclass(kind, float | Decimal):
        view.kind = "number"
        view.attrs.setdefault("step", "any")
    elif kind is datetime:
        view.kind = "datetime-local"
    elif kind is date:
        view.kind = "date"
    elif kind is time:
        view.kind = "time"
    elif kind is str:
        if name == "email" or name.endswith("_email"):
            view.kind = "email"
        elif max_length is not None and max_length > LONG_TEXT:
            view.kind = "textarea"
    elif kind is StoredFile:
        view.kind = "file"
    elif "Email" in getattr(kind, "__name__", ""):
        view.kind = "email"
    elif "Url" in getattr(kind, "__name__", ""):
        view.kind = "url"
    else:
        view.kind = "json"  # lists, dicts, models: edited as JSON text
    if options.get("widget"):
        view.kind = str(options["widget"])
    return view


def input_value(view: FieldView, value: Any) -> Any:
    """A value as the form's signal holds it (what the input shows)."""
    if value is None or view.kind == "file":  # a file input starts empty (the file is kept)
        return False if view.kind == "checkbox" else ""
    if view.kind == "checkbox":
        return bool(value)
    if isinstance(value, Enum):
        return str(value.value)
    if view.kind == "datetime-local" and isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="minutes")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if view.kind == "json":
        return json.dumps(value, default=str)
    if view.kind == "number" and isinstance(value, int | float):
        return value
    return str(value) if not isinstance(value, str) else value


def render_control(view: FieldView, signal: str, *, input_id: str, on_input: str | None = None) -> Any:
    """The input element of a field, bound to the form signal ``signal`` (a path such as
    ``smform.product_new.name``); ``on_input`` runs (debounced) as the user types."""
    if view.kind == "file":
        from starmodel.adapters.driving.ui.file_fields import file_control

        return file_control(view.attrs, signal, input_id, view.name)
    attrs: dict[str, Any] = {"id": input_id, "name": view.name, "data-bind": signal}
    if view.required and view.kind != "checkbox":
        attrs["required"] = True
        attrs["aria-required"] = "true"
    if view.placeholder:
        attrs["placeholder"] = view.placeholder
    if on_input:
        event = "change" if view.kind in ("checkbox", "select", "date", "time", "datetime-local") else "input"
        modifier = "" if event == "change" else "__debounce.400ms"
        attrs[f"data-on:{event}{modifier}"] = on_input
    if view.kind == "select":
        options = [] if view.required else [Option("-", value="")]
        options += [Option(text, value=value) for value, text in view.choices]
        return Select(*options, cls="uk-select", **attrs)
    if view.kind in ("textarea", "json"):
        return Textarea(cls="uk-textarea", rows="4", **attrs, **_length_attrs(view))
    if view.kind == "checkbox":
        return Input(type="checkbox", cls="uk-checkbox", **attrs)
    return Input(type=view.kind, cls="uk-input", autocomplete="off", **attrs, **view.attrs)


def _length_attrs(view: FieldView) -> dict[str, str]:
    return {k: v for k, v in view.attrs.items() if k in ("minlength", "maxlength")}


def format_value(view: FieldView, value: Any) -> Any:
    """A value as lists and detail views show it (text, escaped by the renderer)."""
    if value is None:
        return Span("—", cls="text-muted-foreground")
    if isinstance(value, StoredFile):
        return value.name
    if view.kind == "checkbox":
        return "Yes" if value else "No"
    if isinstance(value, Enum):
        return dict(view.choices).get(str(value.value), str(value.value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date | time):
        return value.isoformat()
    if view.kind == "json":
        return json.dumps(value, default=str)
    text = str(value)
    return text if len(text) <= 120 else text[:119] + "…"


def form_values(views: list[FieldView], raw: Any) -> dict[str, Any]:
    """What a form's signals hold, made ready for validation: an emptied optional input means
    ``None``, an emptied required non-text one is left out (so the error says the field is
    required), a select gives its choice's real value, JSON text is parsed; everything else
    is validated by the entity as it is."""
    if not isinstance(raw, dict):
        return {}
    values: dict[str, Any] = {}
    for view in views:
        if view.name not in raw:
            continue
        value = raw[view.name]
        if view.kind == "file":  # an upload's token, or nothing: the file is kept
            if isinstance(value, str) and value.strip():
                values[view.name] = value
            continue
        if isinstance(value, str) and not value.strip() and view.kind != "json":
            if view.optional:
                values[view.name] = None
            elif view.kind in _TEXT_KINDS:
                values[view.name] = value
            continue
        if view.kind == "select" and isinstance(value, str):
            value = _choice_value(view.annotation, value)
        elif view.kind == "json" and isinstance(value, str):
            with contextlib.suppress(ValueError):  # not JSON: left as text, the entity refuses it
                value = read_json(value) if value.strip() else None
        values[view.name] = value
    return values


_TEXT_KINDS = ("text", "textarea", "email", "url", "password", "search", "tel", "color")


def _choice_value(kind: Any, text: str) -> Any:
    members = list(kind) if inspect.isclass(kind) and issubclass(kind, Enum) else None
    candidates = [m.value for m in members] if members is not None else list(get_args(kind))
    for candidate in candidates:
        if str(candidate) == text:
            return candidate
    return text

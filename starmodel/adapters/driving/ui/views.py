"""``EntityViews``: the generated form, list and detail view of one entity, drawn with
MonsterUI / Franken UI classes. Each piece is usable alone inside an app's own page, and
overridable per field (``inputs`` / ``cells``) or per entity (subclass and override a method).

Live behaviour: lists and detail views watch their entity on the tab's live stream; a record
created, changed or deleted anywhere makes them fetch themselves again (``smlive.<namespace>``
changes), while forms keep what the user is typing (their values live in ``smform`` signals,
which no live update touches).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from fasthtml.common import A, Div, Form, Input, Label, Li, Nav, P, Span, Table, Tbody, Td, Th, Thead, Tr, Ul
from monsterui.all import Button, ButtonT, TextPresets

from starmodel.adapters.driving.live.lists import LIVE_SIGNAL, WATCH_SIGNAL
from starmodel.adapters.driving.ui.fields import (
    FieldView,
    field_view,
    format_value,
    input_value,
    render_control,
)
from starmodel.adapters.driving.ui.file_fields import file_value
from starmodel.adapters.driving.ui.pending import busy_while, pending_signal, sends_with_indicator
from starmodel.adapters.driving.ui.wording import plural, words
from starmodel.adapters.driving.web.input_limits import InputRefused, read_int
from starmodel.core.entity import Entity
from starmodel.core.errors import ValidationFailed
from starmodel.core.fields import editable_fields, public_fields, sortable_fields
from starmodel.core.json_text import json_text
from starmodel.core.queries import ListQuery, ResultPage

if TYPE_CHECKING:
    from starmodel.adapters.driving.ui.mount import UiMount

__all__ = ["FORM_SIGNAL", "LIVE_SIGNAL", "EntityViews", "InputRenderer", "parse_list_query", "plural"]

FORM_SIGNAL = "smform"
InputRenderer = Callable[[FieldView, str, str], Any]
"""``render(view, signal_path, input_id)`` -> the input element of one field."""
CellRenderer = Callable[[Entity], Any]


class EntityViews:
    """The generated views of ``entity_cls``, served through ``mount`` (its action routes).

    Override per field with ``inputs`` (how a form field is drawn) and ``cells`` (how a value
    is shown in lists and detail views); choose ``columns`` and ``per_page``; or subclass and
    override ``form``, ``table``, ``row``, ``detail`` for a whole entity.
    """

    per_page: ClassVar[int] = 20
    """Records per page of a generated list."""
    columns: ClassVar[tuple[str, ...] | None] = None
    """List columns (default: the public fields shown in lists, at most eight)."""
    inputs: ClassVar[Mapping[str, InputRenderer]] = {}
    """Field name -> ``render(view, signal_path, input_id)``: the input drawn for that field in forms."""
    cells: ClassVar[Mapping[str, CellRenderer]] = {}
    """Field name -> ``render(record)``: how that field's value is shown in lists and detail views."""

    def __init__(self, entity_cls: type[Entity], mount: UiMount, *, page_path: str | None = None) -> None:
        self.entity_cls = entity_cls
        self.mount = mount
        self.page_path = page_path
        """Where the entity's generated pages are (``/products``), if it has them."""
        self.namespace = entity_cls.namespace()
        self.title = entity_cls.__name__
        self.title_plural = plural(words(entity_cls.__name__))

    # --- facts -------------------------------------------------------------------------

    def field(self, name: str) -> FieldView:
        """The view of one field (its label, input kind, constraints)."""
        return field_view(self.entity_cls, name)

    def form_fields(self, *, creating: bool) -> list[FieldView]:
        """The fields a create (``creating=True``) or edit form sets."""
        return [self.field(name) for name in editable_fields(self.entity_cls, creating=creating)]

    def can_create(self) -> bool:
        """Whether a form can create a record: every required field must be one it sets
        (a required server-only field, such as a password hash, is set by server code)."""
        settable = set(editable_fields(self.entity_cls, creating=True))
        required = {n for n, info in self.entity_cls.model_fields.items() if info.is_required()}
        return self.entity_cls.options().scope == "id" and required <= settable

    def editable(self) -> bool:
        """Whether records can be edited and deleted here (a session entity's instances belong
        to their sessions: shown, never changed from another one)."""
        return self.entity_cls.options().scope != "session" and bool(self.form_fields(creating=False))

    def deletable(self) -> bool:
        """Whether records can be deleted here (records only; not a session's instance)."""
        return self.entity_cls.options().scope == "id"

    def list_columns(self) -> list[FieldView]:
        """The fields shown as columns of the list (``columns``, else the default ones)."""
        if self.columns is not None:
            return [self.field(name) for name in self.columns]
        shown = [self.field(name) for name in public_fields(self.entity_cls)]
        return [view for view in shown if view.in_list][:8]

    def label(self, record: Entity) -> str:
        """How a record is named in titles: its ``name``, ``title`` or ``email``, else its
        class and key (``Product 3``)."""
        for name in ("name", "title", "email", "label"):
            value = getattr(record, name, None) if name in public_fields(self.entity_cls) else None
            if isinstance(value, str) and value.strip():
                return value.strip()
        return f"{self.title} {self.key_of(record)}"

    def key_of(self, record: Entity) -> str:
        """The record's key as it appears in URLs."""
        return record.record_key() or record._sm_key or ""

    def url(self, action: str, **params: Any) -> str:
        """The URL of one of the views' routes (``create``, ``update``, ``validate``, ``list``...)."""
        return self.mount.url(self.namespace, action, **params)

    def record_url(self, record: Entity, suffix: str = "") -> str | None:
        """The record's generated page (``/products/3``, plus ``suffix``), if the entity has pages."""
        if self.page_path is None:
            return None
        return f"{self.page_path}/{self.key_of(record)}{suffix}"

    # --- forms -------------------------------------------------------------------------

    def form_signal(self, record: Entity | None) -> str:
        """The name of the signal holding a create or an edit form's values."""
        return f"{self.namespace}_{'new' if record is None else 'edit'}"

    def form(self, record: Entity | None = None, *, then: str = "stay") -> Any:
        """A create form (``record=None``) or an edit form; submitting validates on the
        server and shows errors next to their fields; nothing is saved until all is valid.
        ``then``: after saving, ``stay`` (reset / keep the form), ``detail`` or ``list``."""
        creating = record is None
        views = self.form_fields(creating=creating)
        name = self.form_signal(record)
        values = {v.name: input_value(v, _initial(self.entity_cls, v.name, record)) for v in views}
        signals = {FORM_SIGNAL: {name: {**values, "_errors": dict.fromkeys(values, "")}}}
        if creating:
            submit = self.url("create", then=then)
        else:
            assert record is not None
            submit = self.url("update", key=self.key_of(record), version=record._sm_version, then=then)
        form_key = "new" if creating else "edit"
        rows = [self.form_row(view, name, form_key) for view in views]
        label = f"Create {words(self.title)}" if creating else "Save changes"
        pending = pending_signal(self.namespace, form_key)
        return Form(
            *rows,
            Div(
                Button(label, cls=ButtonT.primary, type="submit", data_testid="sm-submit",
                       **busy_while(pending)),
                Span(
                    cls="text-sm text-destructive", data_text=f"${FORM_SIGNAL}.{name}._errors.__root__ ?? ''"
                ),
                cls="flex items-center gap-3",
            ),
            id=f"sm-form-{self.namespace}-{form_key}",
            cls="space-y-4 max-w-2xl",
            novalidate=True,  # the server validates (and says why), not the browser
            data_signals=json_text(signals, default=str),
            **{"data-on:submit__prevent": f"@post('{submit}')"},
            **sends_with_indicator(pending),
        )

    def form_row(self, view: FieldView, form_name: str, form_key: str) -> Any:
        """One field of a form: label, input (``inputs`` or the generated one), help and error line."""
        signal = f"{FORM_SIGNAL}.{form_name}.{view.name}"
        input_id = f"sm-{self.namespace}-{form_key}-{view.name}"
        validate = f"@post('{self.url('validate', form=form_key, field=view.name)}')"
        render = self.inputs.get(view.name)
        control = (
            render(view, signal, input_id)
            if render
            else render_control(view, signal, input_id=input_id, on_input=validate)
        )
        label = Label(
            view.label,
            Span(" *", cls="text-destructive", aria_hidden="true") if view.required else "",
            fr=input_id,
            cls="uk-form-label",
        )
        error = P(
            cls="text-sm text-destructive min-h-[1.25rem]",
            id=f"{input_id}-error",
            data_testid=f"error-{view.name}",
            data_text=f"${FORM_SIGNAL}.{form_name}._errors.{view.name} ?? ''",
        )
        help_text = P(view.help, cls=TextPresets.muted_sm) if view.help else ""
        if view.kind == "checkbox":
            return Div(Div(control, label, cls="flex items-center gap-2"), help_text, error, cls="space-y-1")
        return Div(label, control, help_text, error, cls="space-y-1")

    # --- lists -------------------------------------------------------------------------

    async def table_for(self, request: Any) -> Any:
        """The list for a page request: its search, sort and page come from the request's
        query string (``?q=&sort=&desc=1&page=``); the caller's right to read is checked."""
        ctx = await self.mount.context(request)
        query = parse_list_query(request.query_params, self.per_page)
        return self.table(await self.mount.web.crud_service.page(self.entity_cls, query, ctx))

    def table(self, page: ResultPage[Any], *, link: Callable[[ListQuery], str] | None = None) -> Any:
        """The list fragment: search box, sortable column headers, rows, pages, empty state.
        It fetches itself again whenever a record of the entity changes anywhere."""
        query = page.query
        link = link or _query_link
        columns = self.list_columns()
        head = Tr(*(self.header(view, query, link) for view in columns), Th(""))
        body = [self.row(record, columns) for record in page.items]
        if not body:
            text = (
                f"No {self.title_plural} match “{query.search}”."
                if query.search
                else f"No {self.title_plural} yet."
            )
            body = [
                Tr(
                    Td(
                        text,
                        colspan=str(len(columns) + 1),
                        cls="text-center py-8 text-muted-foreground",
                        data_testid="sm-empty",
                    )
                )
            ]
        refresh = self.url("list", **_query_args(query))
        return Div(
            self.search_box(query, link),
            Div(
                Table(Thead(head), Tbody(*body), cls="uk-table uk-table-divider uk-table-hover uk-table-sm"),
                cls="overflow-x-auto",
            ),
            self.pager(page, link),
            id=f"sm-list-{self.namespace}",
            cls="space-y-4",
            **self.live_attrs(refresh),
        )

    def live_attrs(self, refresh_url: str) -> dict[str, str]:
        """Attributes that make an element watch its entity and fetch ``refresh_url`` again
        whenever a record changes."""
        return {
            "data-signals": json.dumps({WATCH_SIGNAL: {self.namespace: "stamp"}}),
            # the fragment routes read no signals: send none
            "data-on-signal-patch": f"@get('{refresh_url}', {{filterSignals: {{include: /^$/}}}})",
            "data-on-signal-patch-filter": f"{{include: /^{LIVE_SIGNAL}\\.{self.namespace}$/}}",
        }

    def header(self, view: FieldView, query: ListQuery, link: Callable[[ListQuery], str]) -> Any:
        """A column's header cell, a sort link when the column can be sorted."""
        if view.name not in sortable_fields(self.entity_cls):
            return Th(view.label)
        active = query.sort == view.name
        descending = not query.descending if active else False
        target = ListQuery(query.search, query.search_fields, view.name, descending, 1, query.per_page)
        arrow = ("▼" if query.descending else "▲") if active else ""
        return Th(
            A(
                view.label,
                Span(arrow, cls="ml-1 text-xs"),
                href=link(target),
                data_testid=f"sort-{view.name}",
                aria_sort=("descending" if query.descending else "ascending") if active else None,
            )
        )

    def row(self, record: Entity, columns: list[FieldView]) -> Any:
        """One record's row of the list: its cells and a link to its page."""
        cells = [Td(self.cell(record, view)) for view in columns]
        target = self.record_url(record)
        actions = A("Open", href=target, cls="uk-btn uk-btn-ghost uk-btn-sm") if target else ""
        return Tr(
            *cells,
            Td(actions, cls="text-right"),
            id=f"sm-row-{self.namespace}-{self.key_of(record)}",
            data_testid="sm-row",
        )

    def cell(self, record: Entity, view: FieldView) -> Any:
        """One value of a record, for lists and detail views (``cells``, else formatted by type)."""
        custom = self.cells.get(view.name)
        if custom is not None:
            return custom(record)
        if view.kind == "file":  # an image preview or a download link
            return file_value(record, view.name)
        return format_value(view, getattr(record, view.name))

    def search_box(self, query: ListQuery, link: Callable[[ListQuery], str]) -> Any:
        """The list's search input (it keeps the current sort)."""
        hidden = {} if query.sort is None else {"sort": query.sort, "desc": "1" if query.descending else ""}
        return Form(
            *(_hidden(name, value) for name, value in hidden.items() if value),
            _search_input(query.search, self.namespace),
            Button("Search", cls=ButtonT.default, type="submit"),
            A("Clear", href=link(ListQuery(per_page=query.per_page)), cls="uk-btn uk-btn-ghost")
            if query.search
            else "",
            method="get",
            role="search",
            cls="flex gap-2",
        )

    def pager(self, page: ResultPage[Any], link: Callable[[ListQuery], str]) -> Any:
        """The list's count (``1-20 of 45``) and links to the other pages."""
        query = page.query
        first = query.offset + 1 if page.total else 0
        last = min(query.offset + query.per_page, page.total)
        summary = Span(f"{first}-{last} of {page.total}", cls=TextPresets.muted_sm, data_testid="sm-count")

        def to(number: int) -> str:
            return link(
                ListQuery(
                    query.search, query.search_fields, query.sort, query.descending, number, query.per_page
                )
            )

        items = []
        if query.page > 1:
            items.append(Li(A("Previous", href=to(query.page - 1), data_testid="sm-prev")))
        for number in _page_numbers(query.page, page.pages):
            if number is None:
                items.append(Li(Span("…")))
            elif number == query.page:
                items.append(Li(Span(str(number), aria_current="page"), cls="uk-active"))
            else:
                items.append(Li(A(str(number), href=to(number))))
        if query.page < page.pages:
            items.append(Li(A("Next", href=to(query.page + 1), data_testid="sm-next")))
        return Div(
            summary, Nav(Ul(*items, cls="uk-pgn uk-pgn-default")), cls="flex items-center justify-between"
        )

    # --- detail ------------------------------------------------------------------------

    def detail(self, record: Entity | None, *, key: str = "") -> Any:
        """Every public field of a record, refreshed live (and a notice once it is deleted).
        A session or global instance shows its values through its signals, which its live
        stream keeps current."""
        if record is not None and self.entity_cls.options().scope != "id":
            return self.instance_detail(record)
        key = self.key_of(record) if record is not None else key
        body: Any
        if record is None:
            body = Div(
                f"This {words(self.title)} was deleted.",
                cls="alert alert-warning",
                role="alert",
                data_testid="sm-deleted",
            )
        else:
            lines = []
            for name in public_fields(self.entity_cls):
                view = self.field(name)
                lines.append(
                    Div(
                        Span(view.label, cls="font-medium text-muted-foreground"),
                        Span(self.cell(record, view), data_testid=f"value-{name}"),
                        cls="grid grid-cols-3 gap-4 py-2",
                    )
                )
            body = Div(*lines, cls="divide-y divide-border")
        return Div(body, id=f"sm-detail-{self.namespace}", **self.live_attrs(self.url("detail", key=key)))

    def instance_detail(self, record: Entity) -> Any:
        """The public fields of a session or global instance, shown through its live signals."""
        lines = []
        for name in public_fields(self.entity_cls):
            view = self.field(name)
            signal = f"${self.namespace}.{name}"
            shown = (
                f"{signal} ? 'Yes' : 'No'"
                if view.kind == "checkbox"
                else (f"JSON.stringify({signal})" if view.kind == "json" else signal)
            )
            custom = name in self.cells
            lines.append(
                Div(
                    Span(view.label, cls="font-medium text-muted-foreground"),
                    Span(
                        self.cell(record, view),
                        data_testid=f"value-{name}",
                        **({} if custom else {"data-text": shown}),
                    ),
                    cls="grid grid-cols-3 gap-4 py-2",
                )
            )
        return Div(record, Div(*lines, cls="divide-y divide-border"), id=f"sm-detail-{self.namespace}")

    def notice(self, record: Entity, *, version: int | None = None, deleted: bool = False) -> Any:
        """Shown above an edit form when somebody else changed or deleted the record meanwhile."""
        version = record._sm_version if version is None else version
        if deleted:
            text: Any = f"Someone deleted this {words(self.title)} while you were editing it."
        elif version != record._sm_version:
            text = (
                f"Someone else changed this {words(self.title)} since you opened it; saving is refused "
                "so their change is not lost. Reload to edit their version."
            )
        else:
            text = ""
        attrs = self.live_attrs(self.url("notice", key=self.key_of(record), version=version))
        inner = Div(text, cls="alert alert-warning", role="alert") if text else ""
        return Div(inner, id=f"sm-notice-{self.namespace}", data_testid="sm-notice", **attrs)



def parse_list_query(params: Any, per_page: int) -> ListQuery:
    """``?q=&sort=&desc=1&page=&per_page=`` -> a ``ListQuery`` (bad numbers: ``ValidationFailed``)."""
    errors: dict[str, str] = {}

    def number(name: str, default: int) -> int:
        raw = params.get(name)
        if raw in (None, ""):
            return default
        try:
            return read_int(str(raw))
        except InputRefused as exc:
            errors[name] = str(exc)
            return default

    page, size = number("page", 1), number("per_page", per_page)
    if errors:
        raise ValidationFailed(errors, "Invalid list query")
    sort = params.get("sort") or None
    return ListQuery(
        search=str(params.get("q") or "").strip(),
        sort=sort,
        descending=params.get("desc") in ("1", "true"),
        page=page,
        per_page=size,
    )


def _initial(entity_cls: type[Entity], name: str, record: Entity | None) -> Any:
    if record is not None:
        return getattr(record, name)
    info = entity_cls.model_fields[name]
    if info.is_required():
        return None
    return info.get_default(call_default_factory=True)


def _query_args(query: ListQuery) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if query.search:
        args["q"] = query.search
    if query.sort:
        args["sort"] = query.sort
    if query.descending:
        args["desc"] = "1"
    if query.page != 1:
        args["page"] = query.page
    return args


def _query_link(query: ListQuery) -> str:
    args = _query_args(query)
    return "?" + urlencode(args) if args else "?"


def _hidden(name: str, value: str) -> Any:
    return Input(type="hidden", name=name, value=value)


def _search_input(text: str, namespace: str) -> Any:
    return Input(
        type="search",
        name="q",
        value=text,
        placeholder="Search…",
        cls="uk-input max-w-sm",
        aria_label="Search",
        data_testid="sm-search",
        id=f"sm-search-{namespace}",
        maxlength="200",
    )


def _page_numbers(current: int, pages: int) -> list[int | None]:
    """Page links around the current page, with the first and last (``None`` = a gap)."""
    wanted = {1, pages, current - 1, current, current + 1}
    numbers: list[int | None] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if number - previous > 1:
            numbers.append(None)
        numbers.append(number)
        previous = number
    return numbers

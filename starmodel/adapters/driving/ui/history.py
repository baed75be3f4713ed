"""The admin's History view of a journaled record: its entries (who, when, which event, each
changed field before and after) and Undo buttons, behind the admin's gate and the entity's
policy (``read`` to see, ``update`` to undo). Refused undos answer 409 with the reason."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fasthtml.common import A, Code, Div, Span, Table, Tbody, Td, Th, Thead, Tr
from monsterui.all import Button, ButtonT, Card, TextPresets
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from starmodel.adapters.driving.datastar.sse import render_outputs
from starmodel.adapters.driving.ui.views import EntityViews
from starmodel.adapters.driving.web.event_route import front
from starmodel.adapters.driving.web.requests import SSEAnswer, error_response
from starmodel.app.journal import JournalService
from starmodel.core.actions import redirect, toast
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import ConfigurationError, PermissionDenied, StarModelError
from starmodel.core.journal import JournalEntry, undone_ids

if TYPE_CHECKING:
    from starmodel.adapters.driving.ui.admin import Admin

__all__ = ["HistoryPages", "history_link"]

log = logging.getLogger("starmodel.ui")
_SHOWN = 100


def history_url(admin_path: str, namespace: str, key: str) -> str:
    return f"{admin_path}/{namespace}/{quote(key, safe='')}/history"


def history_link(admin: Admin, views: EntityViews, record: Entity) -> list[Any]:
    """The History button of a journaled record's admin page (nothing for other entities)."""
    entity_cls = views.entity_cls
    if entity_cls.options().journal is None:
        return []
    key = record.record_key() or record._sm_key or ""
    if entity_cls.options().scope == "global":
        key = "global"
    return [A("History", href=history_url(admin.path, views.namespace, key), cls="uk-btn uk-btn-default",
              data_testid="sm-history")]


class HistoryPages:
    """``GET <admin>/<namespace>/<key>/history`` and ``POST .../history/undo?entry=<id>``."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        route = admin.web.app.route
        route(admin.path + "/{namespace}/{key}/history", methods=["get"])(self.page)
        undo = Route(admin.path + "/{namespace}/{key}/history/undo", self.undo, methods=["POST"])
        routes = admin.web.app.router.routes
        routes.insert(front(routes), undo)  # an ASGI answer, as the admin's actions give

    @property
    def journal(self) -> JournalService:
        journal = self.admin.web.journal
        if journal is None:
            raise ConfigurationError("this app has no journal service; build it with StarModel(...)")
        return journal

    def _views(self, namespace: str) -> EntityViews | None:
        views = self.admin.views_for(namespace)
        if views is None or views.entity_cls.options().journal is None:
            return None
        return views

    async def page(self, request: Request, namespace: str, key: str) -> Any:
        views = self._views(namespace)
        pages = self.admin.pages
        if views is None:
            return pages.error(request, 404, f"No journaled entity {namespace!r}")

        async def draw(ctx: CallContext) -> Any:
            entries = await self.journal.history(views.entity_cls, key, limit=_SHOWN)
            may_undo = views.entity_cls.permits("update", ctx)
            record = "" if key == "global" else f"/{quote(key, safe='')}"
            back = A("Back", href=f"{self.admin.path}/{namespace}{record}", cls="uk-btn uk-btn-ghost")
            table = _table(entries, may_undo, f"{history_url(self.admin.path, namespace, key)}/undo")
            return self.admin.layout(request, f"History of {views.title} {key}", (back, Card(table)))

        return await pages.guarded(request, views, "read", draw)

    async def undo(self, request: Request) -> Response | SSEAnswer:
        namespace, key = request.path_params["namespace"], request.path_params["key"]
        views = self._views(namespace)
        if views is None:
            return error_response(404, f"No journaled entity {namespace!r}")
        web = self.admin.web
        refusal = web.refuse_cross_site(request)
        if refusal:
            return error_response(403, refusal)
        entry = request.query_params.get("entry") or None
        if entry is not None and (len(entry) > 32 or not entry.isalnum()):
            return error_response(422, "entry must be a journal entry id")
        try:
            ctx = await self.admin.mount.context(request)
            if not views.entity_cls.permits("update", ctx):
                raise PermissionDenied(f"You may not change {views.title_plural}")
            undone = await self.journal.undo(views.entity_cls, key, entry, ctx)
        except StarModelError as exc:
            return error_response(exc.status_code, str(exc), retry_after=exc.retry_after)
        except Exception:
            log.exception("undo on %s %s failed", namespace, key)
            return error_response(500, "Something went wrong; nothing was changed")
        outputs = [toast(f"Undone: {undone.event} (entry {undone.id})", "success"),
                   redirect(history_url(self.admin.path, namespace, key))]
        return SSEAnswer(200, render_outputs(outputs))


def _table(entries: list[JournalEntry], may_undo: bool, undo_url: str) -> Any:
    if not entries:
        return Div("No changes journaled yet.", cls=TextPresets.muted_sm, data_testid="sm-history-empty")
    undone = undone_ids(entries)
    rows = []
    for entry in entries:
        changes = [
            Div(Span(name, cls="font-medium"), ": ", Code(_short(before)), " → ", Code(_short(after)))
            for name, (before, after) in entry.changes.items()
        ]
        params = ", ".join(f"{k}={_short(v)}" for k, v in entry.params.items())
        if entry.id in undone:
            action: Any = Span(f"undone by #{undone[entry.id]}", cls=TextPresets.muted_sm)
        elif may_undo and entry.kind == "change" and entry.undoes is None:
            action = Button(
                "Undo",
                cls=ButtonT.secondary,
                type="button",
                data_testid=f"sm-undo-{entry.id}",
                **{"data-on:click": f"@post('{undo_url}?entry={entry.id}')"},
            )
        else:
            action = ""
        rows.append(Tr(
            Td(f"#{entry.id}"),
            Td(entry.at.strftime("%Y-%m-%d %H:%M:%S"), cls=TextPresets.muted_sm),
            Td(entry.event + (f"({params})" if params else ""),
               Span(f" undoes #{entry.undoes}", cls=TextPresets.muted_sm) if entry.undoes else ""),
            Td(entry.actor),
            Td(*changes),
            Td(action),
            data_testid="sm-history-entry",
        ))
    return Table(
        Thead(Tr(Th("Entry"), Th("When (UTC)"), Th("Event"), Th("By"), Th("Changes"), Th(""))),
        Tbody(*rows),
        cls="uk-table uk-table-divider uk-table-small",
    )


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"

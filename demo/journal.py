"""The journal page (``/journal``): a whiteboard everybody shares, whose entity keeps a journal.
Every change is listed with who made it, the event, and each field before and after; the
Undo button puts the latest change back (refused, with the reason, when it cannot be).

The History panel asks for itself again whenever the whiteboard's signals change (this tab's
events, or another's through the live stream), so every open tab shows the same history.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from datastar_py import attribute_generator as data
from datastar_py.sse import ServerSentEventGenerator as SSE
from datastar_py.starlette import DatastarResponse
from fasthtml.common import Code, Div, Input, Li, P, Span, Ul, to_xml
from monsterui.all import H3, Button, ButtonT, Card, DivLAligned, TextPresets
from pydantic import StringConstraints
from starlette.requests import Request

from demo.activity import SHARED_STORE
from starmodel import Entity, StarModel, StarModelError, event

__all__ = ["COLORS", "Whiteboard", "history_panel", "install_journal", "whiteboard_card"]

COLORS = ("slate", "amber", "emerald", "sky")
Color = Literal["slate", "amber", "emerald", "sky"]
HISTORY_SHOWN = 12


class Whiteboard(Entity):
    """One headline for everybody, with a journal of its changes (the last 50 kept)."""

    headline: Annotated[str, StringConstraints(min_length=1, max_length=80)] = "Hello, journal"
    color: Color = "slate"
    model_config = {"scope": "global", "store": SHARED_STORE, "journal": {"keep": 50}}

    @event
    def write(self, text: str):
        """Write a new headline (the text box is the signal ``$whiteboard.text``)."""
        self.headline = text.strip()

    @event
    def paint(self, color: Color):
        self.color = color


def whiteboard_card(board: Whiteboard) -> Any:
    sig = Whiteboard.sig
    return Card(
        board,
        Div(
            Span(data.text(sig.headline), id="whiteboard-headline", cls="text-2xl font-bold"),
            Span(data.text(sig.color), id="whiteboard-color", cls="sc-pill"),
            cls="flex items-center gap-3 flex-wrap",
        ),
        DivLAligned(
            Input(type="text", placeholder="a new headline", id="whiteboard-text", cls="uk-input w-64",
                  **{"data-bind": f"{Whiteboard.namespace()}.text"}),
            Button("Write", data.on("click", Whiteboard.write()), cls=ButtonT.primary, id="whiteboard-write"),
        ),
        DivLAligned(*[
            Button(color, data.on("click", Whiteboard.paint(color)), id=f"whiteboard-paint-{color}")
            for color in COLORS
        ]),
        header=H3("Whiteboard"),
        footer=P("Global and journaled: open a second browser and watch the history follow.",
                 cls=TextPresets.muted_sm),
    )


def history_panel(entries: list[Any], note: str = "") -> Any:
    """The latest entries, newest first, and the Undo button (``#journal-history``)."""
    items = []
    for entry in entries:
        changes = "; ".join(
            f"{name}: {before!r} → {after!r}" for name, (before, after) in entry.changes.items()
        )
        undoes = f" (undoes #{entry.undoes})" if entry.undoes else ""
        items.append(Li(
            Span(f"#{entry.id} ", cls=TextPresets.muted_sm),
            Code(entry.event), undoes, " by ", Span(entry.actor, cls="font-medium"),
            Span(f" at {entry.at.strftime('%H:%M:%S')}", cls=TextPresets.muted_sm),
            Div(changes, cls="text-sm"),
            data_testid="journal-entry",
        ))
    return Div(
        DivLAligned(
            Button("Undo the latest change", data.on("click", "@post('/journal/undo')"),
                   cls=ButtonT.secondary, id="journal-undo"),
            Span(note, id="journal-note", cls="text-sm", data_testid="journal-note"),
        ),
        Ul(*items, cls="space-y-2 mt-3") if items else P("No changes yet.", cls=TextPresets.muted_sm),
        id="journal-history",
    )


def install_journal(sm: StarModel) -> None:
    """The ``/journal/history`` fragment and the ``/journal/undo`` action."""

    async def entries() -> list[Any]:
        return await sm.journal.history(Whiteboard, "global", limit=HISTORY_SHOWN)

    async def history(request: Request) -> Any:
        try:
            panel = history_panel(await entries())
        except StarModelError as exc:  # Redis down: say so in the panel
            panel = history_panel([], f"The journal cannot be read now: {exc}")
        return DatastarResponse(SSE.patch_elements(to_xml(panel)))

    async def undo(request: Request) -> Any:
        refusal = sm.refuse_cross_site(request)
        if refusal:
            return DatastarResponse(SSE.patch_elements(to_xml(history_panel([], refusal))), status_code=403)
        try:
            undone = await sm.journal.undo(Whiteboard, "global", ctx=await sm.call_context(request))
        except StarModelError as exc:  # refused (409, with the reason), or a store is down
            panel = history_panel(await entries(), f"Not undone: {exc}")
            return DatastarResponse(SSE.patch_elements(to_xml(panel)), status_code=exc.status_code)
        board = await sm.load(Whiteboard)
        note = f"Undone: {undone.event} (#{undone.id})"
        return DatastarResponse([
            SSE.patch_signals({Whiteboard.namespace(): board.public_state()}),
            SSE.patch_elements(to_xml(history_panel(await entries(), note))),
        ])

    sm.app.route("/journal/history", methods=["get"])(history)
    sm.app.route("/journal/undo", methods=["post"])(undo)


def history_card() -> Any:
    """The History panel, which loads itself and follows every change of the whiteboard."""
    refresh = "@get('/journal/history', {filterSignals: {include: /^whiteboard\\./}})"
    return Card(
        Div(
            P("Loading the history…", cls=TextPresets.muted_sm),
            id="journal-history",
        ),
        Div(**{"data-init": refresh, "data-on-signal-patch": refresh,
               "data-on-signal-patch-filter": "{include: /^whiteboard\\.(headline|color)$/}"}),
        header=H3("History"),
        footer=P("sm.journal.history(...) and sm.journal.undo(...): every entry says who, which "
                 "event, and each field before and after.", cls=TextPresets.muted_sm),
    )

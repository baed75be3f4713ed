"""The app of the nginx deployment test (``tests/e2e/test_e2e_nginx.py``), served by several
``starmodel run`` processes behind nginx: a counter shared by everybody (a global memory
entity: kept in Redis, since REDIS_URL is set), notes kept in PostgreSQL with a form to add
one, and a live list of them. Each answer says which process gave it (``X-Served-By``, from
``DEPLOY_PROCESS``), so the test knows where each tab's live stream landed.
"""

from __future__ import annotations

import os
from typing import Any

from fasthtml.common import H1, Button, Div, Form, Input, Li, Span, Title, Ul
from sqlmodel import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starmodel import Entity, StarModel, event, patch_signals


class Board(Entity):
    """One counter for everybody."""

    model_config = {"scope": "global", "namespace": "board"}
    count: int = 0

    @event
    def bump(self) -> None:
        self.count += 1


class Note(Entity, table=True):
    """A note, a row of the ``note`` table shared by every process."""

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(min_length=1, max_length=200)

    @event
    def create(cls, new_text: str) -> Any:
        """Add the note typed in the box (``$note.new_text``), then empty the box."""
        cls.records.add(Note(text=new_text))
        return patch_signals(note={"new_text": ""})


class ServedBy:
    """Adds ``X-Served-By: <process name>`` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.name = os.environ.get("DEPLOY_PROCESS", "?").encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-served-by", self.name)]}
            await send(message)

        await self.app(scope, receive, tagged)


sm = StarModel(entities=[Board, Note], title="Deployment test")
app = sm.app
app.add_middleware(ServedBy)


def note_row(note: Note) -> Any:
    return Li(note, Span(note.text, **{"data-text": f"{note.sig.text}"}), id=note.dom_id(), cls="note")


sm.row_view(Note, container="notes")(note_row)  # every process knows where rows go


@app.route("/")
async def index(request):  # FastHTML binds it by name: no annotation
    board = await sm.load(Board)
    notes = await sm.list(Note, limit=200)
    return Title("Deployment test"), Div(
        H1("Deployment test"),
        Div(board, Span(id="count", **{"data-text": "$board.count"}),
            Button("+1", id="bump", **{"data-on:click": Board.bump()})),
        Form(
            Input(type="text", id="note-new", autocomplete="off", **{"data-bind": "note.new_text"}),
            Button("Add", type="submit", id="note-add"),
            **{"data-on:submit__prevent": Note.create()},
        ),
        sm.live_list(Note, notes, tag=Ul, id="notes"),
        id="page",
    )

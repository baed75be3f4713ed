"""The demo's todo list: a SQL entity whose rows follow every change live, in every tab.

``Todo`` is stored in the demo's database (``DATABASE_URL``, else ``demo/demo.db``); its table
is created when the app starts. ``Todo.create`` is an event of the class (its first parameter is
``cls``) fed by the input bound to ``$todo.new_title``; ``toggle`` and ``remove`` are events of
one record (the action carries its key).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

from datastar_py import attribute_generator as data
from fasthtml.common import Form, Input, Li, P, Span, Ul
from monsterui.all import H3, Button, ButtonT, Card, DivLAligned, TextPresets
from pydantic import StringConstraints
from sqlmodel import Field

from starmodel import CallContext, Entity, StarModel, StarModelError, event, patch_signals

__all__ = ["DEMO_DATABASE", "SAMPLE_TODOS", "Todo", "database_url", "seed_todos", "todo_card", "todo_row"]

DEMO_DATABASE = Path(__file__).resolve().parent / "demo.db"
"""The demo's SQLite file (``*.db`` is ignored by git)."""

TITLE_MAX = 100
TodoTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)]


def database_url() -> str:
    """``DATABASE_URL`` when set (e.g. ``postgresql://postgres@127.0.0.1:5432/test``), else the
    demo's own SQLite file, whatever the working directory."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{DEMO_DATABASE}"


class Todo(Entity, table=True):
    """One todo item, a row of the ``todo`` table shared by everybody."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    done: bool = False

    @event
    def create(cls, new_title: TodoTitle) -> Any:
        """Add a todo titled with what was typed in the box (``$todo.new_title``); an empty
        title is refused with a 422 and the field error, and nothing is added."""
        cls.records.add(Todo(title=new_title))
        return patch_signals(todo={"new_title": ""})

    @event
    def toggle(self) -> None:
        """Mark it done, or not done again."""
        self.done = not self.done

    @event
    def remove(self) -> None:
        """Delete it: its row disappears from every tab."""
        Todo.records.delete(self)


SAMPLE_TODOS = ("Try the live board in two browsers", "Tick me in one tab, watch the other", "Delete me")
"""What a first start puts in an empty todo list."""


async def seed_todos(sm: StarModel) -> int:
    """Fill an empty todo list with ``SAMPLE_TODOS`` (a list that has any todo is left as it
    is, so later starts add nothing). Returns how many were added."""
    try:
        async with sm.dispatcher.uow_factory(Todo) as uow:
            if await uow.list(Todo, limit=1):
                return 0
            for title in SAMPLE_TODOS:
                uow.add(Todo(title=title))
            await uow.commit(CallContext(session_id="server"))
    except StarModelError as exc:  # the database is down: the rest of the demo still runs
        logging.getLogger("demo").error("demo: sample todos not added: %s", exc)
        return 0
    return len(SAMPLE_TODOS)


def todo_row(todo: Todo) -> Any:
    """One row of the live list. Its values are read from the record's signals
    (``$todo.<id>.title``), so changes made anywhere apply in place."""
    sig = todo.sig
    return Li(
        todo,
        DivLAligned(
            Input(
                type="checkbox",
                cls="uk-checkbox",
                aria_label="done",
                data_testid="toggle",
                # the box shows what the server holds: the click only asks for the change
                **{"data-effect": f"el.checked = !!{sig.done}"},
                **{"data-on:click": f"evt.preventDefault(); {todo.toggle()}"},
            ),
            Span(
                todo.title,
                data.text(sig.title),
                data.class_({"line-through": sig.done, "opacity-60": sig.done}),
                cls="todo-title grow",
            ),
            Button(
                "Delete",
                data.on("click", todo.remove()),
                cls=(ButtonT.ghost, "uk-btn-sm"),
                data_testid="delete",
                aria_label=f"delete {todo.title}",
            ),
            cls="gap-3",
        ),
        id=todo.dom_id(),
        cls="py-1",
    )


def todo_card(sm: StarModel, todos: list[Todo]) -> Any:
    """The todo card: the add box, and the live list of every todo."""
    add = Todo.create()
    return Card(
        Form(
            Input(
                type="text",
                placeholder="What needs doing?",
                id="todo-new",
                cls="uk-input grow",
                maxlength=str(TITLE_MAX),
                autocomplete="off",
                **{"data-bind": "todo.new_title"},
            ),
            Button("Add", type="submit", id="todo-add", cls=ButtonT.primary),
            # Enter in the box submits the form: one path for the button and the key
            data.on("submit", add).prevent,
            cls="flex gap-2",
        ),
        Span(
            id="todo-error",
            cls="text-sm text-red-600",
            **{"data-text": "$todo._errors?.new_title ?? ''"},
        ),
        sm.live_list(Todo, todos, tag=Ul, cls="divide-y"),  # rows drawn by todo_row
        header=H3("Todos"),
        footer=P(
            "SQL records: every tab sees rows added, ticked and deleted.",
            cls=TextPresets.muted_sm,
        ),
    )

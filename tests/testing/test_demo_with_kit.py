"""The demo's events, tested with the kit as an app author would: a fresh app serving the
demo's entities (wired like ``demo/app.py``: live todo rows, the activity feed), its own
memory store and SQLite file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))

from demo.activity import SHARED_STORE, Activity, follow_activity  # noqa: E402
from demo.app import Counter, LongTask, SharedCounter  # noqa: E402
from demo.todos import Todo, todo_row  # noqa: E402
from starmodel import StateStore, toast  # noqa: E402
from starmodel.testing import EventClient, Fragment  # noqa: E402

pytestmark = pytest.mark.skipif(
    SHARED_STORE is not StateStore.SERVER_MEMORY,
    reason="REDIS_URL was set when the demo was imported: its shared entities live in Redis",
)


@pytest.fixture
async def client(starmodel_app):
    sm = starmodel_app(Counter, SharedCounter, LongTask, Todo, Activity)
    sm.row_view(Todo)(todo_row)
    follow_activity(sm)
    async with EventClient(sm) as client:
        yield client


async def test_counter_increment(client):
    result = await client.call(Counter.increment)
    assert result.signals == {"counter": {"count": 1, "doubled": 2}}
    result = await client.call(Counter.increment, amount=5)
    assert result.signals == {"counter": {"count": 6, "doubled": 12}}
    result = await client.call(Counter.decrement, amount=2)
    assert result.signals == {"counter": {"count": 4, "doubled": 8}}
    assert (await client.state(Counter)).count == 4
    assert (await client.session().state(Counter)).count == 0  # per session


async def test_counter_add_reads_the_typed_signal_and_refuses_bad_input(client):
    added = await client.call(Counter.add, _signals={"counter": {"typed": 12}})
    assert added.signals == {"counter": {"count": 12, "doubled": 24}}

    not_a_number = await client.call(Counter.add, _signals={"counter": {"typed": "abc"}})
    assert not_a_number.status == 422
    assert "valid integer" in not_a_number.field_errors["typed"]
    [shown] = not_a_number.toasts
    assert shown.variant == "error"

    too_big = await client.call(Counter.add, typed=5000)
    assert too_big.status == 422 and too_big.error == "Add at most 1000 at a time"
    assert (await client.state(Counter)).count == 12


async def test_counter_reset_shows_a_status_and_a_toast(client):
    await client.call(Counter.increment, amount=3)
    result = await client.call(Counter.reset)
    assert result.signals == {"counter": {"count": 0, "doubled": 0}}
    [status] = result.fragments
    assert status.selector == "#counter-status" and "Counter reset!" in status
    assert result.toasts == [toast("Counter reset")]


async def test_shared_counter_is_seen_by_another_session(client):
    other = client.session()
    async with other.watch() as seen:
        await client.call(SharedCounter.increment)
    assert seen.signals["shared_counter"] == {"count": 1}
    [entry] = seen.signals["activity"]["entries"]  # the feed follows it (a bus subscriber)
    assert entry.endswith("Shared counter is now 1")
    assert (await other.state(SharedCounter)).count == 1
    assert (await client.call(SharedCounter.reset)).signals["shared_counter"] == {"count": 0}


async def test_todo_create_toggle_remove(client):
    other = client.session()
    async with other.watch(Todo) as seen:
        created = await client.call(Todo.create, new_title="  milk  ")
        assert created.status == 200
        [todo] = await client.records(Todo)
        assert todo.title == "milk" and todo.done is False
        key = todo.record_key()
        milk = {"id": todo.id, "title": "milk", "done": False}
        assert created.signals == {"todo": {"new_title": "", key: milk}}  # the box is emptied
        assert seen.signals["todo"][key] == milk
        [row] = seen.fragments
        assert row.selector == "#todo-list" and row.mode == "append"
        assert f'id="todo-{key}"' in row and "milk" in row

        seen.clear()
        assert (await client.call(todo.toggle)).ok
        assert (await client.record(Todo, key)).done is True
        assert seen.signals["todo"] == {key: {"done": True}}
        assert seen.signals["activity"]["entries"][0].endswith(f"Todo #{key} done")

        seen.clear()
        assert (await other.call(todo.remove)).ok  # todos are shared: anybody may remove one
        assert await client.records(Todo) == []
        assert seen.fragments == [Fragment("", f"#todo-{key}", "remove")]


async def test_todo_needs_a_title(client):
    for title in ("", "   ", "x" * 101):  # typed in the box: the bound signal feeds new_title
        refused = await client.call(Todo.create, _signals={"todo": {"new_title": title}})
        assert refused.status == 422 and "new_title" in refused.field_errors
    assert (await client.call(Todo.create, new_title="x" * 101)).status == 422
    assert await client.records(Todo) == []


async def test_an_empty_title_given_in_the_action_is_refused_too(client):
    refused = await client.call(Todo.create, new_title="")
    assert refused.status == 422
    assert await client.records(Todo) == []


async def test_long_task_streams_each_step(client):
    result = await client.call(LongTask.run, steps=3)
    assert result.status == 200
    assert [step.html for step in result.steps] == [
        f'<span id="task-step">Step {n} of 3</span>' for n in (1, 2, 3)
    ] + [""]
    assert [step.signals["long_task"]["progress"] for step in result.steps[:3]] == [33, 67, 100]
    assert result.signals["long_task"] == {"progress": 100, "status": "done"}
    task = await client.state(LongTask)
    assert (task.progress, task.status) == (100, "done")

    refused = await client.call(LongTask.run, steps=0)
    assert refused.status == 422 and refused.error == "steps must be between 1 and 100"


async def test_long_task_in_the_background_reaches_the_session_tabs(client):
    async with client.watch() as seen:
        started = await client.call(LongTask.run_in_background, steps=2)
        assert started.ok and started.fragments == []
        await client.settle()
    assert [f.html for f in seen.fragments] == [
        f'<span id="task-step">Step {n} of 2</span>' for n in (1, 2)
    ]
    assert seen.signals["long_task"] == {"progress": 100, "status": "done"}

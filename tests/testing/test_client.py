"""The test kit (``starmodel.testing``): ``EventClient`` against a small app defined here,
through the pytest fixtures of the ``starmodel`` plugin."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from fasthtml.common import Div, Li, Span
from sqlmodel import Field

from starmodel import Entity, StarModel, alert, computed, event, patch_signals, redirect, script, toast
from starmodel.core.actions import Alert, Redirect, Script, Toast
from starmodel.testing import (
    BrowserSession,
    CallResult,
    EventClient,
    Fragment,
    LiveView,
    RepositoryContract,
    parse_sse,
)

REPO = Path(__file__).resolve().parents[2]


class Counter(Entity):
    count: int = 0

    @computed
    def doubled(self) -> int:
        return self.count * 2

    @event
    def increment(self, amount: int = 1):
        if amount > 100:
            raise ValueError("That is too many at once")
        self.count += amount

    @event
    def add(self, typed: int):
        self.count += typed

    @event(selector="#status", mode="inner")
    def reset(self):
        self.count = 0
        return Span("Reset!"), toast("Back to zero", variant="success")

    @event
    def badge(self):
        return Div(f"count is {self.count}", id="badge")

    @event
    def everything(self):
        return [toast("Saved"), alert("Careful <now>"), script("console.log('x')"),
                patch_signals(ui={"open": True}), redirect("/done?a=1")]

    @event(method="get")
    def peek(self, note: str = ""):
        return Div(f"{self.count} {note}", id="peek")

    @event(allow=lambda ctx: False)
    def forbidden(self):
        self.count = -1

    @event
    def crash(self):
        self.count = 999
        raise RuntimeError("boom")

    @event
    async def count_up(self, steps: int = 3):
        for step in range(1, steps + 1):
            self.count += 1
            yield Span(f"Step {step} of {steps}", id="progress")

    @event
    async def slow(self):
        yield Span("started", id="progress")
        await asyncio.sleep(30)
        yield Span("never", id="progress")

    @event
    async def fail_midway(self):
        self.count += 1
        yield Span("first", id="progress")
        self.count += 1
        raise ValueError("the second step is broken")


class SharedCounter(Entity):
    model_config = {"scope": "global"}
    count: int = 0

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    def touch(self):
        pass


class Job(Entity):
    model_config = {"scope": "global"}
    done: int = 0
    status: str = "idle"

    @event(background=True)
    async def run(self, steps: int = 3, pause: float = 0.01):
        self.status = "running"
        for step in range(1, steps + 1):
            await asyncio.sleep(pause)
            self.done = step
            yield Span(f"{step}/{steps}", id="job-step")
        self.status = "finished"

    @event(background=True)
    async def explode(self):
        yield None
        raise ValueError("the file is corrupt")


class Item(Entity, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=50)
    done: bool = False

    @event
    def create(cls, title: str):
        cls.records.add(Item(title=title))

    @event
    def toggle(self):
        self.done = not self.done

    @event
    def remove(self):
        Item.records.delete(self)


class Memo(Entity, table=True):
    model_config = {"private": True}
    id: int | None = Field(default=None, primary_key=True)
    text: str = ""

    @event
    def write(cls, text: str):
        cls.records.add(Memo(text=text))

    @event
    def edit(self, text: str):
        self.text = text


class Stranger(Entity):
    """Served by no app of this module."""

    @event
    def wave(self):
        pass


def _make_impostor() -> type[Entity]:
    class Impostor(Entity):
        """Same namespace and event as Counter, but not the class the app serves."""

        model_config = {"namespace": "counter"}

        @event
        def increment(self, amount: int = 1):
            pass

    return Impostor


Impostor = _make_impostor()

ENTITIES = (Counter, SharedCounter, Job, Item, Memo)


def item_row(item: Item):
    return Li(item.title, id=item.dom_id())


@pytest.fixture
def sm(starmodel_app) -> StarModel:
    sm = starmodel_app(*ENTITIES)
    sm.row_view(Item)(item_row)
    return sm


@pytest.fixture
async def client(sm, starmodel_client):
    async with starmodel_client(sm) as client:
        yield client


# --- calls, answers, state -------------------------------------------------------------


async def test_call_answers_merged_signals_and_the_state_is_stored(client):
    result = await client.call(Counter.increment, amount=2)
    assert isinstance(result, CallResult)
    assert result.status == 200 and result.ok and result.error is None
    assert result.signals == {"counter": {"count": 2, "doubled": 4}}
    assert result.field_errors == {}
    assert (await client.state(Counter)).count == 2
    again = await client.call(Counter.increment)
    assert again.signals == {"counter": {"count": 3, "doubled": 6}}
    assert "Counter.increment 200" in repr(again)


async def test_bad_input_is_a_422_with_field_errors_and_changes_nothing(client):
    await client.call(Counter.increment, amount=1)
    result = await client.call(Counter.add, typed="abc")
    assert result.status == 422 and not result.ok
    assert set(result.field_errors) == {"typed"}
    assert "valid integer" in result.field_errors["typed"]
    assert result.error == "Invalid input for add"
    assert result.signals == {}
    [shown] = result.toasts
    assert shown.variant == "error" and "typed" in shown.message
    assert (await client.state(Counter)).count == 1

    too_many = await client.call(Counter.increment, amount=500)
    assert too_many.status == 422 and too_many.error == "That is too many at once"

    missing = await client.call(Counter.add)
    assert missing.status == 422 and "typed" in missing.field_errors

    unexpected = await client.call(Counter.increment, colour="red")
    assert unexpected.status == 422 and unexpected.field_errors == {"colour": "Unexpected parameter"}


async def test_parameters_come_from_signals_and_success_clears_field_errors(client):
    result = await client.call(Counter.add, _signals={"counter": {"typed": 7}})
    assert result.status == 200
    assert result.signals == {"counter": {"count": 7, "doubled": 14}}
    assert result.field_errors == {}  # the cleared ``_errors`` are not errors
    assert "_errors" in result.text


async def test_fragments_carry_selector_and_mode(client):
    reset = await client.call(Counter.reset)
    [fragment] = reset.fragments
    assert fragment == Fragment("<span>Reset!</span>", "#status", "inner")
    assert "Reset!" in fragment and str(fragment) == fragment.html
    assert reset.toasts == [Toast("Back to zero", "success", 4000)]
    assert reset.toasts == [toast("Back to zero", variant="success")]

    await client.call(Counter.increment, amount=3)
    badge = await client.call(Counter.badge)
    assert badge.fragments == [Fragment('<div id="badge">count is 3</div>', None, "outer")]
    assert "count is 3" in badge.html


async def test_actions_in_order(client):
    result = await client.call(Counter.everything)
    assert result.actions == [
        Toast("Saved", "info", 4000),
        Alert("Careful <now>"),
        Script("console.log('x')"),
        Redirect("/done?a=1"),
    ]
    assert result.redirect == "/done?a=1"
    assert result.alerts == ["Careful <now>"]
    assert result.scripts == ["console.log('x')"]
    assert result.signals == {"ui": {"open": True}}
    assert result.fragments == []


async def test_get_events_send_their_signals_in_the_query(client):
    result = await client.call(Counter.peek, note="hi", _signals={"counter": {"count": 5}})
    assert result.status == 200
    assert "0 hi" in result.html  # the stored count: the signals sent are not state


async def test_refusals_and_failures_keep_the_real_status(client):
    forbidden = await client.call(Counter.forbidden)
    assert forbidden.status == 403 and forbidden.error == "You may not run forbidden"
    crashed = await client.call(Counter.crash)
    assert crashed.status == 500
    assert crashed.error == "Something went wrong; nothing was changed"
    assert (await client.state(Counter)).count == 0
    cross_site = await client.call(Counter.increment, _headers={"Origin": "https://evil.example"})
    assert cross_site.status == 403 and "Cross-origin" in (cross_site.error or "")


async def test_nothing_to_send_back_is_a_204(client):
    result = await client.call(SharedCounter.touch)
    assert result.status == 204 and result.ok
    assert result.steps == [] and result.events == [] and result.signals == {}


# --- sessions and live streams -----------------------------------------------------------


async def test_sessions_have_their_own_cookie_and_state(client):
    other = client.session()
    assert isinstance(other, BrowserSession)
    assert other.session_id != client.session_id and other.tab_id != client.tab_id
    await client.call(Counter.increment, amount=4)
    await other.call(Counter.increment, amount=1)
    assert (await client.state(Counter)).count == 4
    assert (await other.state(Counter)).count == 1
    # the server sees the session id the kit minted: state is stored under it
    assert other.http.cookies.get(client.sm.app.session_cookie)


async def test_another_session_sees_global_changes_but_not_session_ones(client):
    other = client.session()
    async with other.watch() as seen:
        assert isinstance(seen, LiveView)
        assert seen.initial == {"counter": {"count": 0, "doubled": 0}, "shared_counter": {"count": 0},
                                "job": {"done": 0, "status": "idle"}}
        await client.call(SharedCounter.increment)
        await client.call(Counter.increment)  # client's session: not other's business
    assert seen.signals == {"shared_counter": {"count": 1}}
    assert len(seen.messages) == 1 and seen.closed is None


async def test_other_tabs_of_a_session_see_its_changes_the_calling_tab_does_not(client):
    async with client.watch() as other_tab, client.watch(own_tab=True) as same_tab:
        await client.call(Counter.increment, amount=2)
    assert other_tab.signals == {"counter": {"count": 2, "doubled": 4}}
    assert same_tab.tab_id == client.tab_id
    assert same_tab.messages == []


async def test_live_view_clear_and_wait_for(client):
    async with client.session().watch() as seen:
        await client.call(SharedCounter.increment)
        seen.clear()
        assert seen.signals == {}
        await client.call(SharedCounter.increment, amount=2)
        await seen.wait_for(lambda view: view.signals.get("shared_counter") == {"count": 3})
        waiting = asyncio.create_task(seen.wait_for(timeout=2))  # the next message
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await client.call(SharedCounter.increment)
        assert await waiting is seen
        with pytest.raises(TimeoutError, match="not met"):
            await seen.wait_for(lambda view: False, timeout=0.05)


async def test_records_create_toggle_remove_and_their_watchers(client):
    other = client.session()
    async with other.watch(Item) as seen:
        created = await client.call(Item.create, title="milk")
        assert created.ok
        [item] = await client.records(Item)
        assert item.title == "milk" and not item.done
        key = item.record_key()
        assert seen.signals == {"item": {key: {"id": int(key), "title": "milk", "done": False}}}
        [row] = seen.fragments
        assert row.selector == "#item-list" and row.mode == "append" and "milk" in row

        seen.clear()
        toggled = await client.call(item.toggle)
        assert toggled.ok
        assert (await client.record(Item, key)).done is True
        assert seen.signals == {"item": {key: {"done": True}}}
        assert (await client.call(Item.toggle, _key=key)).ok  # the key given by hand
        assert (await client.record(Item, key)).done is False

        seen.clear()
        assert (await client.call(item.remove)).ok
        assert await client.record(Item, key) is None
        assert seen.signals == {"item": {key: None}}
        assert seen.fragments == [Fragment("", f"#item-{key}", "remove")]

    assert (await client.call(Item.create, title="")).field_errors.keys() == {"title"}
    assert (await client.call(Item.toggle, _key="404")).status == 404


async def test_private_records_belong_to_their_session(client):
    other = client.session()
    await client.call(Memo.write, text="mine")
    [memo] = await client.records(Memo)
    assert await other.records(Memo) == []
    assert await other.record(Memo, memo.record_key()) is None
    assert (await other.call(memo.edit, text="stolen")).status == 404
    assert (await client.record(Memo, memo.record_key())).text == "mine"


# --- streaming and background events -----------------------------------------------------


async def test_streaming_event_steps(client):
    result = await client.call(Counter.count_up, steps=3)
    assert result.status == 200
    assert [step.signals for step in result.steps] == [
        {"counter": {"count": 1, "doubled": 2}},
        {"counter": {"count": 2, "doubled": 4}},
        {"counter": {"count": 3, "doubled": 6}},
    ]
    assert [step.html for step in result.steps] == [
        f'<span id="progress">Step {n} of 3</span>' for n in (1, 2, 3)
    ]
    assert result.signals == {"counter": {"count": 3, "doubled": 6}}
    assert len(result.fragments) == 3
    assert (await client.state(Counter)).count == 3


async def test_a_stream_failing_midway_keeps_its_committed_steps(client):
    result = await client.call(Counter.fail_midway)
    assert result.status == 200 and result.error is None  # the answer had started
    first, failure = result.steps
    assert first.signals == {"counter": {"count": 1, "doubled": 2}}
    [shown] = failure.toasts
    assert shown.variant == "error" and "broken" in shown.message
    assert (await client.state(Counter)).count == 1


async def test_background_event_settle_and_watch(client):
    async with client.session().watch() as seen:
        result = await client.call(Job.run, steps=3)
        assert result.ok
        await client.settle()
    assert (await client.state(Job)).status == "finished"
    dones = [m.signals["job"]["done"] for m in seen.messages if "done" in m.signals.get("job", {})]
    assert dones == [1, 2, 3]
    assert [f.html for f in seen.fragments] == [f'<span id="job-step">{n}/3</span>' for n in (1, 2, 3)]
    assert seen.signals["job"] == {"done": 3, "status": "finished"}


async def test_background_failure_reaches_watchers_as_a_toast(client):
    async with client.watch() as seen:
        await client.call(Job.explode)
        await client.settle()
    [shown] = seen.toasts
    assert shown.variant == "error" and "corrupt" in shown.message


async def test_settle_times_out_and_closing_stops_leftover_work(sm):
    started = time.monotonic()
    async with EventClient(sm) as client:
        await client.call(Job.run, steps=100, pause=0.5)
        with pytest.raises(TimeoutError, match="still running"):
            await client.settle(timeout=0.05)
    assert time.monotonic() - started < 5
    assert not sm.dispatcher.running_tasks()


async def test_a_call_that_does_not_finish_in_time(sm):
    started = time.monotonic()
    async with EventClient(sm, timeout=0.3) as client:
        with pytest.raises(TimeoutError, match=r"Counter\.slow: no complete answer within 0\.3s"):
            await client.call(Counter.slow)
        await client.settle(timeout=2)  # the stream's reader went away: the event stopped
        assert (await client.call(Counter.increment)).ok
    assert time.monotonic() - started < 5


# --- misuse: clear errors ----------------------------------------------------------------


async def test_not_an_event(client):
    with pytest.raises(TypeError, match="not an @event"):
        await client.call(Counter.doubled)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an @event"):
        await client.call("increment")  # type: ignore[arg-type]


async def test_unknown_event_of_an_entity_the_app_does_not_serve(client):
    with pytest.raises(LookupError, match=r"Stranger\.wave is not served by this app .*Counter"):
        await client.call(Stranger.wave)


async def test_wrong_entity_with_the_same_namespace(client):
    with pytest.raises(LookupError, match=r"runs .*Counter\.increment, not .*Impostor\.increment"):
        await client.call(Impostor.increment)


async def test_record_event_without_a_record(client):
    with pytest.raises(TypeError, match=r"Item\.toggle is an event of one record"):
        await client.call(Item.toggle)
    with pytest.raises(TypeError, match="not saved yet"):
        await client.call(Item(title="draft").toggle)
    with pytest.raises(TypeError, match="per session: it takes no _key"):
        await client.call(Counter.increment, _key=3)
    with pytest.raises(TypeError, match="an event of the class: it takes no _key"):
        await client.call(Item.create, title="x", _key=3)


async def test_browser_expressions_cannot_be_sent(client):
    with pytest.raises(TypeError, match="browser expression"):
        await client.call(Counter.increment, amount=Counter.sig.count)


async def test_watch_needs_record_classes_it_serves(client):
    with pytest.raises(LookupError, match="not a record class"):
        async with client.watch(Counter):
            pass


async def test_the_client_must_be_open(sm):
    client = EventClient(sm)
    with pytest.raises(RuntimeError, match="async with EventClient"):
        await client.call(Counter.increment)
    async with client:
        with pytest.raises(RuntimeError, match="open already"):
            await client.__aenter__()
    with pytest.raises(RuntimeError, match="not open"):
        await client.state(Counter)
    assert sm.hub.closing  # the app was shut down
    with pytest.raises(TypeError, match="needs a StarModel app"):
        EventClient(sm.app)  # type: ignore[arg-type]


async def test_lifespan_runs_startup_and_shutdown(starmodel_app):
    sm = starmodel_app(Counter)
    calls: list[str] = []

    async def started() -> None:
        calls.append("start")

    async def stopped() -> None:
        calls.append("stop")

    sm.startup_hooks.append(started)
    sm.shutdown_hooks.append(stopped)
    async with EventClient(sm):
        assert calls == ["start"]
    assert calls == ["start", "stop"]


async def test_a_failing_startup_is_raised(starmodel_app):
    sm = starmodel_app(Counter)

    async def broken() -> None:
        raise OSError("no database today")

    sm.startup_hooks.append(broken)
    with pytest.raises(OSError, match="no database today"):
        async with EventClient(sm):
            pass


async def test_raw_http_for_hand_made_requests(client):
    response = await client.http.get("/favicon.ico")
    assert response.status_code == 204
    assert isinstance(client.http, httpx.AsyncClient)


# --- the SSE parser ----------------------------------------------------------------------


def test_parse_sse():
    text = (
        ": a comment\r\n\r\n"
        "event: datastar-patch-elements\nid: e-1\n"
        "data: selector #x\ndata: elements <p>\ndata: elements </p>\n\n"
        "data: plain\n\n"
    )
    first, second = parse_sse(text)
    assert first.type == "datastar-patch-elements" and first.id == "e-1"
    assert first.value("elements") == "<p>\n</p>" and first.value("selector") == "#x"
    assert first.value("mode") is None
    assert second.type == "message" and second.data == ("plain",)


# --- the pytest plugin -------------------------------------------------------------------


async def test_starmodel_app_builds_fresh_isolated_apps(starmodel_app, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    first, second = starmodel_app(Counter, Item), starmodel_app(Counter, Item, debug=True)
    assert first.settings.redis_url is None and first.settings.secret_key
    assert second.settings.debug and not first.settings.debug
    assert first.settings.database_url != second.settings.database_url
    assert str(tmp_path) in (first.settings.database_url or "")
    async with EventClient(first) as one, EventClient(second) as two:
        await one.call(Counter.increment, amount=5)
        await one.call(Item.create, title="only in the first")
        assert (await two.state(Counter)).count == 0
        assert await two.records(Item) == []
    with pytest.raises(TypeError, match="needs the entity classes"):
        starmodel_app()


async def test_starmodel_client_builds_its_app_or_takes_one(starmodel_client, sm):
    async with starmodel_client(Counter, debug=True) as client:
        assert client.sm.settings.debug
        crashed = await client.call(Counter.crash)
        assert crashed.error == "RuntimeError: boom (nothing was changed)"
    assert starmodel_client(sm).sm is sm
    with pytest.raises(TypeError, match="takes no settings"):
        starmodel_client(sm, debug=True)


def test_the_plugin_is_registered_as_an_entry_point(pytestconfig):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"starmodel": "starmodel.testing.plugin"}
    import starmodel.testing.plugin as plugin

    assert pytestconfig.pluginmanager.is_registered(plugin)


def test_the_plugin_loads_no_client_until_used():
    code = (
        "import sys, starmodel; before = set(sys.modules); import starmodel.testing.plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('starmodel')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env=env)
    assert json.loads(out.stdout.replace("'", '"')) == ["starmodel.testing", "starmodel.testing.plugin"]


def test_the_package_still_exports_the_contract_suite():
    assert RepositoryContract.__name__ == "RepositoryContract"
    import starmodel.testing as testing

    assert "EventClient" in dir(testing)
    with pytest.raises(AttributeError):
        _ = testing.Nope  # type: ignore[attr-defined]

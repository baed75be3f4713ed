"""The model of long-running events: what runs while the entity is held, what ``self`` is after
an ``await``, how a body holds its entity across waits, and which refusals reach the caller."""

from __future__ import annotations

import asyncio

import pytest

from starmodel import ConfigurationError, Entity, PermissionDenied, StarModel, ValidationFailed, event
from starmodel.testing import EventClient


class Meter(Entity):
    model_config = {"scope": "global", "namespace": "model_meter"}
    n: int = 0
    log: list[str] = []

    @event
    def bump(self):
        self.n += 1

    @event(background=True)
    async def refuse_value(self, at: str = "top"):
        if at == "top":
            raise ValueError("that file is empty")
        self.log = [*self.log, "waited"]
        await asyncio.sleep(0.01)
        raise ValueError("later failure")

    @event(background=True)
    async def refuse_validation(self):
        raise ValidationFailed({"rows": "too many"}, "Invalid import")

    @event(background=True)
    async def refuse_permission(self):
        raise PermissionDenied("only the owner may import")

    @event(background=True)
    async def bad_assignment(self):
        self.n = "many"  # type: ignore[assignment]  # refused by validation, before any wait
        yield None

    @event(background=True)
    async def count_twice(self, pause: float = 0.2):
        self.n += 10
        await asyncio.sleep(pause)  # others run here; self is reloaded before going on
        self.n += 10

    @event(background=True)
    async def held_twice(self, pause: float = 0.2):
        async with self.hold():  # nobody else changes the meter inside the block
            before = self.n
            await asyncio.sleep(pause)
            self.n = before + 10
        self.log = [*self.log, "held"]

    @event(background=True)
    async def idle(self):
        await asyncio.sleep(0.05)  # nothing changed: nothing is committed
        await asyncio.sleep(0.05)

    @event(background=True)
    async def stubborn(self):
        self.log = ["started"]
        await asyncio.sleep(0.05)
        self.log = [*self.log, "step"]
        await asyncio.sleep(30)


@pytest.fixture
def sm():
    return StarModel(entities=[Meter], secret_key="model")


@pytest.mark.parametrize(
    ("name", "status", "text"),
    [
        ("refuse_value", 422, "that file is empty"),
        ("refuse_validation", 422, "Invalid import"),
        ("refuse_permission", 403, "only the owner may import"),
        ("bad_assignment", 422, "Invalid value"),
    ],
)
async def test_a_refusal_before_the_first_wait_answers_the_caller_and_starts_nothing(sm, name, status, text):
    async with EventClient(sm) as client, client.session().watch() as viewer:
        answer = await client.call(getattr(Meter, name))
        assert answer.status == status, answer
        assert text in answer.error
        assert not sm.dispatcher.running_tasks()
        await asyncio.sleep(0.05)
        assert viewer.toasts == [] and viewer.messages == []  # nobody else was told anything
        assert (await client.state(Meter)).n == 0


async def test_parameters_are_validated_before_anything_starts(sm):
    async with EventClient(sm) as client:
        answer = await client.call(Meter.count_twice, pause="soon")
        assert answer.status == 422 and "pause" in answer.field_errors
        assert not sm.dispatcher.running_tasks()


async def test_a_failure_after_a_wait_is_a_toast_for_the_viewers_and_keeps_earlier_stretches(sm):
    async with EventClient(sm) as client, client.session().watch() as viewer:
        assert (await client.call(Meter.refuse_value, at="later")).ok
        await client.settle()
        await viewer.wait_for(lambda view: bool(view.toasts))
        [shown] = viewer.toasts
        assert shown.variant == "error" and "later failure" in shown.message
        assert (await client.state(Meter)).log == ["waited"]  # the stretch before the wait stands


async def test_self_after_an_await_holds_what_others_committed_meanwhile(sm):
    async with EventClient(sm) as client:
        assert (await client.call(Meter.count_twice)).ok
        clicks = await asyncio.gather(*(client.session().call(Meter.bump) for _ in range(5)))
        assert all(click.status == 200 for click in clicks)
        await client.settle()
        assert (await client.state(Meter)).n == 25


async def test_hold_keeps_the_entity_across_waits_and_commits_at_the_block_end(sm):
    async with EventClient(sm) as client:
        assert (await client.call(Meter.held_twice, pause=0.2)).ok
        loop = asyncio.get_running_loop()
        begun = loop.time()
        assert (await client.session().call(Meter.bump)).status == 200
        assert loop.time() - begun > 0.1  # it waited for the held block
        await client.settle()
        state = await client.state(Meter)
        assert (state.n, state.log) == (11, ["held"])


async def test_stretches_that_change_nothing_commit_nothing(sm):
    async with EventClient(sm) as client, client.session().watch() as viewer:
        assert (await client.call(Meter.idle)).ok
        await client.settle()
        await asyncio.sleep(0.05)
        assert viewer.messages == []


async def test_cancel_rolls_back_only_the_current_stretch(sm):
    async with EventClient(sm) as client, client.session().watch() as viewer:
        assert (await client.call(Meter.stubborn)).ok
        shown = ["started", "step"]
        await viewer.wait_for(lambda view: view.signals.get("model_meter", {}).get("log") == shown)
        stop = await client.http.post(
            "/model_meter/stubborn/cancel", headers={"datastar-request": "true"}
        )
        assert stop.status_code == 200
        await client.settle()
        await viewer.wait_for(lambda view: any("was cancelled" in t.message for t in view.toasts))
        assert (await client.state(Meter)).log == ["started", "step"]


class Importer(Entity):
    model_config = {"scope": "global", "namespace": "model_importer"}
    rows: int = 0

    @event(background=True, exclusive=True)
    async def start(self, rows: int = 3):
        """Import the file."""
        for _ in range(rows):
            await asyncio.sleep(0.05)
            self.rows += 1
            yield None


async def test_an_exclusive_event_refuses_a_second_start_and_pages_see_it_running():
    app = StarModel(entities=[Importer], secret_key="model")
    async with EventClient(app) as client, client.session().watch() as viewer:
        assert viewer.initial["model_importer"]["_running"] == {"start": False}
        assert (await client.call(Importer.start)).ok
        again = await client.session().call(Importer.start)
        assert again.status == 409 and "Import the file is running already" in again.error
        async with client.session().watch() as late:  # a tab opened mid-run is told too
            assert late.initial["model_importer"]["_running"] == {"start": True}
        await client.settle()
        await viewer.wait_for(lambda view: view.signals["model_importer"].get("_running") == {"start": False})
        running = [m.signals["model_importer"]["_running"]["start"] for m in viewer.messages
                   if "_running" in m.signals.get("model_importer", {})]
        assert running == [True, False]
        assert (await client.state(Importer)).rows == 3  # one run only
        assert (await client.call(Importer.start)).ok  # it ended: another may start
        await client.settle()
        assert (await client.state(Importer)).rows == 6


def test_exclusive_is_for_background_events():
    with pytest.raises(ConfigurationError, match="background events only"):
        event(exclusive=True)(lambda self: None)

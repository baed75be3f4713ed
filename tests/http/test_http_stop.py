"""A stopping app, in-process: live streams end with a reconnect hint, new ones and readiness
answer 503, background runs finish within the grace period or are cancelled then (their
current step rolled back, their viewers told); health and readiness of an app without
servers to ask."""

import asyncio
import re

from sm_http import DATASTAR, asgi_client, post_event

from starmodel import Entity, StarModel, event
from starmodel.core.messages import EntityChanged, EventOutputs

LIVE = "/_starmodel/live"


class Sweep(Entity):
    """A background run of ``steps`` steps, 0.05 s each; ``note`` set before a step and
    committed with it."""

    model_config = {"scope": "global", "namespace": "stop_sweep"}
    step: int = 0
    note: str = ""

    @event(background=True)
    async def run(self, steps: int = 3):
        for n in range(1, steps + 1):
            self.note = f"working on {n}"
            await asyncio.sleep(0.05)
            self.step = n
            yield None


def app(grace: float) -> StarModel:
    return StarModel(entities=[Sweep], secret_key="test", shutdown_grace=grace)


async def stored(sm: StarModel) -> Sweep:
    async with sm.dispatcher.uow_factory(Sweep) as uow:
        return await uow.load(Sweep, "global")


async def test_health_and_readiness_of_an_app_with_nothing_to_ask() -> None:
    sm = app(1.0)
    async with asgi_client(sm) as client:
        health = await client.get("/_starmodel/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = await client.get("/_starmodel/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "services": {}}
        assert ready.headers["cache-control"] == "no-store"


async def test_stopping_ends_live_streams_with_a_spread_retry_hint_and_refuses_new_ones() -> None:
    sm = app(1.0)
    async with asgi_client(sm) as client, client.stream("GET", LIVE, headers=DATASTAR) as live:
        chunks = live.aiter_text()
        assert "datastar-patch-signals" in await anext(chunks)  # open, with its catch-up
        sm.stopping.begin()
        rest = "".join([chunk async for chunk in chunks])  # ends: no timeout needed
        hint = re.fullmatch(r"retry: (\d+)\n\n", rest)
        assert hint is not None and 500 <= int(hint.group(1)) <= 2500, rest
        refused = await client.get(LIVE, headers=DATASTAR)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        ready = await client.get("/_starmodel/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "stopping"}
        assert (await client.get("/_starmodel/health")).status_code == 200


async def test_a_background_run_that_ends_within_the_grace_period_finishes() -> None:
    sm = app(2.0)
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/stop_sweep/run", steps=3)
        assert answer.status_code in (200, 204)
        sm.stopping.begin()
        await sm.stopping.drain()
    assert (await stored(sm)).step == 3
    assert not sm.dispatcher.background_tasks()


async def test_a_background_run_past_the_grace_period_is_cancelled_and_its_viewers_told() -> None:
    sm = app(0.3)
    told: list[EventOutputs] = []
    changes: list[EntityChanged] = []

    async def tell(fact: EventOutputs) -> None:
        told.append(fact)

    async def note(change: EntityChanged) -> None:
        changes.append(change)

    sm.subscribe(EventOutputs, tell)
    sm.subscribe(EntityChanged, note)
    async with asgi_client(sm) as client:
        answer = await post_event(client, "/stop_sweep/run", steps=1000)
        assert answer.status_code in (200, 204)
        sm.stopping.begin()
        started = asyncio.get_running_loop().time()
        await sm.stopping.drain()
        took = asyncio.get_running_loop().time() - started
    assert 0.3 <= took < 1.0, took
    assert not sm.dispatcher.background_tasks()
    kept = await stored(sm)
    assert 1 <= kept.step < 1000  # the committed steps stay
    # what it changed before the wait it was cancelled in was committed at that wait (a run
    # holds its entity only while it changes it), nothing after
    assert kept.note in (f"working on {kept.step}", f"working on {kept.step + 1}"), kept
    assert [c.changes["step"] for c in changes if "step" in c.changes][-1] == kept.step  # viewers saw it
    assert any("run was cancelled" in str(fact.outputs) for fact in told), told

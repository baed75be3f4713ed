"""Events through the real ASGI app: signals, components, actions and streamed yields."""

import asyncio
import json
import time

import pytest
from fasthtml.common import Div, Span
from sm_http import (
    DATASTAR,
    asgi_client,
    live_server,
    of_type,
    open_stream,
    parse_sse,
    post_event,
    socket_client,
    state_signals,
)

from starmodel import (
    Entity,
    ServerOnly,
    StarModel,
    alert,
    computed,
    event,
    patch_signals,
    redirect,
    script,
    toast,
)

STEP_PAUSE = 0.3


class Counter(Entity):
    count: int = 0
    label: str = ""
    secret: ServerOnly[str] = "hidden-value"

    @computed
    def doubled(self) -> int:
        return self.count * 2

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    def relabel(self, label: str):
        self.label = label

    @event
    def touch_secret(self):
        self.secret = "still hidden"

    @event(selector="#status", mode="inner")
    def reset(self):
        self.count = 0
        return Span("Counter reset!", id="status-text")

    @event
    def status(self):
        return Div(f"Count is {self.count}", id="status")

    @event
    def notify(self, variant: str = "info"):
        return toast(f"Hello <{variant}>", variant=variant)  # type: ignore[arg-type]

    @event
    def leave(self):
        return redirect("/goodbye")

    @event
    def warn(self):
        return alert('Careful: "quotes" </script>')

    @event
    def run_script(self):
        return script("console.log('ran')")

    @event
    def open_panel(self):
        return patch_signals(ui={"open": True})

    @event
    def many(self):
        self.count += 1
        return [toast("first"), Div("second", id="second")]

    @event(method="get")
    def peek(self, amount: int = 0):
        return Div(f"{self.count + amount}", id="peek")

    @event
    async def later(self, amount: int = 1):
        await asyncio.sleep(0)
        self.count += amount

    @event
    async def steps(self, total: int = 3):
        for done in range(1, total + 1):
            if done > 1:
                await asyncio.sleep(STEP_PAUSE)
            self.count = done
            yield Span(f"Step {done} of {total}", id="step")


@pytest.fixture
def sm():
    return StarModel(entities=[Counter], secret_key="test")


@pytest.fixture
async def client(sm):
    async with asgi_client(sm) as client:
        yield client


def sse(response):
    return parse_sse(response.text)


async def test_event_answers_with_changed_and_computed_fields_only(client):
    response = await post_event(client, "/counter/increment", amount=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response)
    assert {e.type for e in events} == {"datastar-patch-signals"}
    assert state_signals(events) == {"counter": {"count": 5, "doubled": 10}}

    response = await post_event(client, "/counter/relabel", label="hi")
    assert state_signals(sse(response)) == {"counter": {"label": "hi"}}


async def test_default_amount_and_state_accumulate(client):
    await post_event(client, "/counter/increment")
    response = await post_event(client, "/counter/increment", amount=2)
    assert state_signals(sse(response)) == {"counter": {"count": 3, "doubled": 6}}


async def test_async_event(client):
    response = await post_event(client, "/counter/later", amount=4)
    assert state_signals(sse(response)) == {"counter": {"count": 4, "doubled": 8}}


async def test_event_without_output_answers_204(client):
    await post_event(client, "/counter/touch_secret")
    response = await post_event(client, "/counter/touch_secret")
    assert response.status_code == 204
    assert response.text == ""


async def test_server_only_change_sends_nothing(client):
    response = await post_event(client, "/counter/touch_secret")
    assert response.status_code == 204


async def test_server_only_field_is_never_sent(client):
    response = await post_event(client, "/counter/increment")
    assert "secret" not in response.text
    assert "hidden-value" not in response.text


async def test_returned_component_is_patched_by_its_id(client):
    await post_event(client, "/counter/increment", amount=2)
    response = await post_event(client, "/counter/status")
    [patch] = sse(response)
    assert patch.type == "datastar-patch-elements"
    assert patch.elements == '<div id="status">Count is 2</div>'
    assert patch.value("selector") is None
    assert patch.value("mode") is None


async def test_returned_component_uses_selector_and_mode_of_the_event(client):
    await post_event(client, "/counter/increment")
    response = await post_event(client, "/counter/reset")
    signals, elements = sse(response)
    assert signals.signals == {"counter": {"count": 0, "doubled": 0}}
    assert elements.type == "datastar-patch-elements"
    assert elements.value("selector") == "#status"
    assert elements.value("mode") == "inner"
    assert "Counter reset!" in elements.elements


@pytest.mark.parametrize("variant", ["info", "success", "warning", "error"])
async def test_toast_is_appended_to_the_toast_area(client, variant):
    response = await post_event(client, "/counter/notify", variant=variant)
    [patch] = of_type(sse(response), "datastar-patch-elements")
    assert patch.type == "datastar-patch-elements"
    assert patch.value("selector") == "#starmodel-toasts"
    assert patch.value("mode") == "append"
    assert f'data-variant="{variant}"' in patch.elements
    assert f"alert-{variant}" in patch.elements
    assert f"Hello &lt;{variant}&gt;" in patch.elements


async def test_redirect_action(client):
    response = await post_event(client, "/counter/leave")
    [patch] = sse(response)
    assert patch.type == "datastar-patch-elements"
    assert 'window.location.assign("/goodbye")' in patch.elements


async def test_alert_action_keeps_its_text_inside_the_script(client):
    response = await post_event(client, "/counter/warn")
    [patch] = sse(response)
    assert 'alert("Careful: \\"quotes\\" <\\/script>")' in patch.elements
    assert patch.elements.count("</script>") == 1


async def test_script_action(client):
    response = await post_event(client, "/counter/run_script")
    [patch] = sse(response)
    assert "console.log('ran')" in patch.elements
    assert patch.elements.startswith("<script")


async def test_patch_signals_action(client):
    response = await post_event(client, "/counter/open_panel")
    [patch] = sse(response)
    assert patch.signals == {"ui": {"open": True}}


async def test_several_outputs_arrive_in_order(client):
    response = await post_event(client, "/counter/many")
    events = sse(response)
    assert [e.type for e in events] == [
        "datastar-patch-signals",
        "datastar-patch-elements",
        "datastar-patch-elements",
    ]
    assert "first" in events[1].elements
    assert events[2].elements == '<div id="second">second</div>'


async def test_get_event_reads_signals_from_the_datastar_query_parameter(client):
    await post_event(client, "/counter/increment", amount=2)
    response = await client.get(
        "/counter/peek",
        params={"datastar": json.dumps({"counter": {"amount": 40}})},
        headers=DATASTAR,
    )
    assert response.status_code == 200
    [patch] = of_type(sse(response), "datastar-patch-elements")
    assert patch.elements == '<div id="peek">42</div>'


async def test_streaming_event_through_asgi_gives_every_step(client):
    response = await post_event(client, "/counter/steps", total=2)
    assert response.status_code == 200
    events = sse(response)
    assert [state_signals([e]) for e in of_type(events, "datastar-patch-signals")] == [
        {"counter": {"count": 1, "doubled": 2}},
        {"counter": {"count": 2, "doubled": 4}},
    ]
    assert [e.elements for e in of_type(events, "datastar-patch-elements")] == [
        '<span id="step">Step 1 of 2</span>',
        '<span id="step">Step 2 of 2</span>',
    ]


async def test_streaming_event_yields_arrive_one_by_one(sm):
    async with live_server(sm) as url, socket_client(url) as client:
        started = time.monotonic()
        arrivals = []
        async with open_stream(
            client, "POST", "/counter/steps?total=3", headers=DATASTAR, content="{}"
        ) as stream:
            assert stream.response.status_code == 200
            while len(arrivals) < 6:
                item = await stream.next(timeout=3)
                arrivals.append((item, time.monotonic() - started))
        kinds = [item.type for item, _ in arrivals]
        assert kinds == ["datastar-patch-signals", "datastar-patch-elements"] * 3
        assert arrivals[1][0].elements == '<span id="step">Step 1 of 3</span>'
        first_at, last_at = arrivals[1][1], arrivals[-1][1]
        assert first_at < STEP_PAUSE  # step 1 is on the wire at once...
        assert last_at - first_at >= 1.5 * STEP_PAUSE  # ...not held back until the event ends


async def test_each_yield_is_saved_before_the_next_one(sm):
    async with (
        live_server(sm) as url,
        socket_client(url) as client,
        open_stream(client, "POST", "/counter/steps?total=2", headers=DATASTAR, content="{}") as stream,
    ):
        await stream.next()
        # the session's state as the store has it, read while the event still runs
        counter = await sm.services.repository_for(Counter).list(Counter)
        assert [c.count for c in counter] == [1]


async def test_leaving_a_streaming_event_early_frees_the_entity(sm):
    async with live_server(sm) as url, socket_client(url) as client:
        async with open_stream(
            client, "POST", "/counter/steps?total=20", headers=DATASTAR, content="{}"
        ) as stream:
            await stream.next()
        response = await asyncio.wait_for(post_event(client, "/counter/increment", amount=100), 2)
        assert response.status_code == 200
        assert state_signals(sse(response))["counter"]["count"] < 110
        assert len(sm.services.dispatcher.locks) == 0

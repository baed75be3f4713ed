"""``StarModel(app=existing)``: an existing FastHTML app gains events, headers and the live
stream, and keeps its own routes, headers and lifespan."""

import httpx
from fasthtml.common import Div, FastHTML, Script
from sm_http import DATASTAR, parse_sse, state_signals

from starmodel import Entity, StarModel, event


class Visits(Entity):
    model_config = {"namespace": "attach_visits"}
    count: int = 0

    @event
    def visit(self):
        self.count += 1


def build():
    started: list[str] = []

    async def lifespan(app):  # FastHTML takes a plain async generator
        started.append("up")
        yield
        started.append("down")

    app = FastHTML(
        secret_key="attach-test",
        hdrs=[Script("window.mine = 1")],
        default_hdrs=False,
        htmx=False,
        surreal=False,
        lifespan=lifespan,
    )

    @app.route("/hello")
    def hello():
        return Div("hello from the app", id="hello")

    sm = StarModel(app=app, entities=[Visits], secret_key="attach-test")
    return app, sm, started


async def test_existing_routes_and_headers_survive_and_events_work():
    app, sm, _ = build()
    assert sm.app is app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/hello")
        assert page.status_code == 200
        assert "hello from the app" in page.text
        assert "window.mine = 1" in page.text  # the app's own header stays
        assert "/_starmodel/static/starmodel.js" in page.text  # StarModel's is added
        assert 'id="starmodel-live"' in page.text
        answer = await client.post("/attach_visits/visit", headers=DATASTAR, json={})
        assert answer.status_code == 200
        assert state_signals(parse_sse(answer.text)) == {"attach_visits": {"count": 1}}


async def test_the_apps_lifespan_still_runs():
    app, sm, started = build()
    async with app.router.lifespan_context(app):
        assert started == ["up"]
        assert not sm.hub.closing
    assert started == ["up", "down"]
    assert sm.hub.closing  # StarModel's shutdown ran too: live streams were told to end

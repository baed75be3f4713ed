"""Cross-site refusal, session isolation, server-only fields and escaping, over HTTP."""

import asyncio
import html
import json

import pytest
from fasthtml.common import Div, Span
from sm_http import DATASTAR, asgi_client, parse_sse, post_event, state_signals

from starmodel import Entity, ServerOnly, StarModel, event


class Tally(Entity):
    count: int = 0
    note: str = ""
    is_admin: ServerOnly[bool] = False

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event
    def write(self, note: str):
        self.note = note


class Board(Entity):
    model_config = {"scope": "global"}
    hits: int = 0

    @event
    def hit(self):
        self.hits += 1


@pytest.fixture
def sm():
    sm = StarModel(entities=[Tally, Board], secret_key="test")

    @sm.app.route("/")
    async def index(request):
        tally = await sm.load(Tally, request)
        return Div(tally, Span(tally.note, id="note"), id="page")

    return sm


@pytest.fixture
async def client(sm):
    async with asgi_client(sm) as client:
        yield client


@pytest.fixture
def stored(sm):
    async def read(cls, key):
        return await sm.services.repository_for(cls).get(cls, key)

    return read


async def count_of(client) -> int:
    """The caller's own tally, read from the signals its page carries."""
    page = await client.get("/")
    assert page.status_code == 200
    marker = 'data-signals="'
    start = page.text.index(marker) + len(marker)
    raw = page.text[start : page.text.index('"', start)]
    return json.loads(html.unescape(raw))["tally"]["count"]


# --- cross-site requests -----------------------------------------------------------------


async def test_request_without_datastar_header_is_refused(client):
    response = await client.post("/tally/increment", content="{}")
    assert response.status_code == 403
    assert await count_of(client) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_site_requests_are_refused(client, headers):
    response = await post_event(client, "/tally/increment", headers=headers)
    assert response.status_code == 403
    assert await count_of(client) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ],
)
async def test_same_origin_requests_are_accepted(client, headers):
    response = await post_event(client, "/tally/increment", headers=headers)
    assert response.status_code == 200
    assert await count_of(client) == 1


async def test_configured_extra_origin_is_accepted():
    sm = StarModel(entities=[Tally], secret_key="test", allowed_origins=("https://app.example",))
    async with asgi_client(sm) as client:
        ok = await post_event(client, "/tally/increment", headers={"Origin": "https://app.example"})
        assert ok.status_code == 200
        refused = await post_event(client, "/tally/increment", headers={"Origin": "https://other.example"})
        assert refused.status_code == 403


# --- sessions ----------------------------------------------------------------------------


async def test_sessions_have_their_own_entities_and_share_global_ones(sm):
    async with asgi_client(sm) as alice, asgi_client(sm) as bob:
        await post_event(alice, "/tally/increment", amount=2)
        await post_event(bob, "/tally/increment", amount=5)
        await post_event(alice, "/tally/increment", amount=1)
        assert await count_of(alice) == 3
        assert await count_of(bob) == 5
        await post_event(alice, "/board/hit")
        response = await post_event(bob, "/board/hit")
        assert state_signals(parse_sse(response.text)) == {"board": {"hits": 2}}


async def test_a_key_argument_cannot_reach_another_session(sm, stored):
    async with asgi_client(sm) as alice, asgi_client(sm) as bob:
        await post_event(alice, "/tally/increment", amount=2)
        [alice_tally] = await sm.services.repository_for(Tally).list(Tally)
        alice_sid = alice_tally._sm_key
        for key in (alice_sid, json.dumps(alice_sid)):  # raw and JSON-encoded, as actions send it
            response = await bob.post(
                "/tally/increment", params={"amount": "100", "_key": key}, headers=DATASTAR
            )
            assert response.status_code in (200, 404, 422)
        assert (await stored(Tally, alice_sid)).count == 2


async def test_signals_cannot_set_fields(client):
    signals = {"tally": {"count": 1000, "is_admin": True, "note": "forged"}}
    response = await post_event(client, "/tally/increment", signals=signals)
    assert state_signals(parse_sse(response.text)) == {"tally": {"count": 1}}
    page = await client.get("/")
    assert "forged" not in page.text
    assert await count_of(client) == 1


async def alice_cookie(sm) -> str:
    """The signed session cookie of a browser whose tally is at 4."""
    async with asgi_client(sm) as alice:
        await post_event(alice, "/tally/increment", amount=4)
        return alice.cookies["starmodel_session"]


async def increment_with_cookie(sm, cookie: str) -> dict:
    """One increment sent with exactly this cookie (no cookie jar); the state it reports."""
    async with asgi_client(sm) as client:
        response = await post_event(
            client, "/tally/increment", headers={"Cookie": f"starmodel_session={cookie}"}
        )
        return state_signals(parse_sse(response.text))


async def test_cookie_with_a_bad_signature_gets_a_fresh_session(sm):
    payload, timestamp, signature = (await alice_cookie(sm)).split(".")
    forged = ".".join([payload, timestamp, "A" * len(signature)])  # alice's sid, bad signature
    assert await increment_with_cookie(sm, forged) == {"tally": {"count": 1}}


async def test_same_cookie_is_the_same_session(sm):
    cookie = await alice_cookie(sm)
    assert await increment_with_cookie(sm, cookie) == {"tally": {"count": 5}}


async def test_concurrent_requests_of_one_session_lose_nothing(client):
    await post_event(client, "/tally/increment", amount=0)
    await asyncio.gather(*(post_event(client, "/tally/increment") for _ in range(50)))
    assert await count_of(client) == 50


# --- what reaches the page ---------------------------------------------------------------


async def test_server_only_field_is_not_in_the_page(client):
    await post_event(client, "/tally/increment")
    page = await client.get("/")
    assert "is_admin" not in page.text


async def test_entity_data_rendered_into_a_page_is_escaped(client):
    response = await post_event(client, "/tally/write", note='<script>alert(1)</script>"x')
    assert response.status_code == 200
    page = await client.get("/")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert await count_of(client) == 0


async def test_signals_patch_carries_data_as_json_not_markup(client):
    response = await post_event(client, "/tally/write", note="</script><b>")
    [patch] = [e for e in parse_sse(response.text) if e.type == "datastar-patch-signals"]
    assert patch.signals["tally"]["note"] == "</script><b>"

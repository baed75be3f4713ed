"""Production security over HTTP: the session cookie's flags and lifetime, https seen behind
trusted proxies only, HSTS, the safe headers, and the Content-Security-Policy with its nonce
on every script of a page."""

from __future__ import annotations

import re

import httpx
import pytest
from fasthtml.common import Div, Script
from sm_http import DATASTAR, post_event

from starmodel import ConfigurationError, Entity, Settings, StarModel, csp_nonce, event

DAY = 24 * 3600


class Lamp(Entity):
    on: bool = False

    @event
    def toggle(self):
        self.on = not self.on


def make_app(**options) -> StarModel:
    sm = StarModel(entities=[Lamp], secret_key="test", **options)

    @sm.app.route("/")
    async def index(request):
        lamp = await sm.load(Lamp, request)
        return Div(lamp, Script("window.mine = 1", nonce=csp_nonce()), id="page")

    @sm.app.route("/whoami")
    def whoami(request):
        return f"{request.client.host} {request.url.scheme}"

    return sm


def client_of(sm: StarModel, *, base_url: str = "http://testserver", peer: str = "127.0.0.1"
              ) -> httpx.AsyncClient:
    """A client whose requests come from ``peer`` (the address the app sees first)."""
    transport = httpx.ASGITransport(sm.app, client=(peer, 4711))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def cookie_flags(response: httpx.Response) -> set[str]:
    [header] = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return {part.strip().lower() for part in header.split(";")[1:]}


# --- the session cookie -------------------------------------------------------------------


async def test_cookie_is_httponly_lax_with_the_session_lifetime_and_not_secure_over_http():
    async with client_of(make_app(session_max_age=3 * DAY)) as client:
        flags = cookie_flags(await post_event(client, "/lamp/toggle"))
    assert {"httponly", "samesite=lax", f"max-age={3 * DAY}", "path=/"} <= flags
    assert "secure" not in flags


async def test_cookie_is_secure_when_the_request_came_over_https():
    async with client_of(make_app(), base_url="https://testserver") as client:
        response = await post_event(client, "/lamp/toggle", headers={"Origin": "https://testserver"})
        assert response.status_code == 200
        assert "secure" in cookie_flags(response)
        assert "max-age=1209600" in cookie_flags(response)  # 14 days unless set


async def test_session_lifetime_comes_from_the_environment():
    settings = Settings.from_env({"STARMODEL_SESSION_MAX_AGE": "3600"})
    assert settings.session_max_age == 3600
    async with client_of(make_app(settings=settings.with_(secret_key="test"))) as client:
        assert "max-age=3600" in cookie_flags(await post_event(client, "/lamp/toggle"))


# --- trusted proxies ----------------------------------------------------------------------


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


async def test_forwarded_headers_are_ignored_unless_the_peer_is_a_trusted_proxy():
    async with client_of(make_app()) as client:  # default: no proxy trusted
        assert (await client.get("/whoami", headers=FORWARDED)).text == "127.0.0.1 http"
        response = await post_event(client, "/lamp/toggle", headers=FORWARDED)
        assert "secure" not in cookie_flags(response)
        assert "strict-transport-security" not in response.headers
    sm = make_app(trusted_proxies=("10.0.0.0/8",))
    async with client_of(sm, peer="192.0.2.1") as client:  # a client that is no proxy
        assert (await client.get("/whoami", headers=FORWARDED)).text == "192.0.2.1 http"


async def test_a_trusted_proxy_makes_the_request_https_with_the_real_client_address():
    sm = make_app(trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    async with client_of(sm) as client:
        assert (await client.get("/whoami", headers=FORWARDED)).text == "203.0.113.9 https"
        # Origin is compared with what the browser saw: https
        response = await post_event(client, "/lamp/toggle", headers={**FORWARDED, "Origin": "https://testserver"})
        assert response.status_code == 200
        assert "secure" in cookie_flags(response)
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        # a client's own X-Forwarded-For entry is not believed: the nearest untrusted hop is
        chain = {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.2.3"}
        assert (await client.get("/whoami", headers=chain)).text == "203.0.113.9 http"
        assert (await client.get("/whoami", headers={"X-Forwarded-For": "nonsense"})).text == "127.0.0.1 http"
        assert (await client.get("/whoami", headers={"X-Forwarded-Proto": "gopher"})).text == "127.0.0.1 http"


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"STARMODEL_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, "'proxy.local' is not an IP address"),
        ({"STARMODEL_SESSION_MAX_AGE": "two weeks"}, "STARMODEL_SESSION_MAX_AGE must be a whole number"),
        ({"STARMODEL_HSTS_MAX_AGE": "-1"}, "STARMODEL_HSTS_MAX_AGE must be a whole number"),
        ({"STARMODEL_CSP_REPORT_ONLY": "maybe"}, "STARMODEL_CSP_REPORT_ONLY must be true or false"),
        ({"STARMODEL_CSP": "default-src 'self';\u00e9"}, "csp must be"),
    ],
)
def test_bad_security_settings_are_refused_with_a_clear_message(env, problem):
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        Settings.from_env(env)


# --- headers --------------------------------------------------------------------------------


async def test_every_answer_has_nosniff_and_a_referrer_policy_and_hsts_only_over_https():
    async with client_of(make_app()) as client:
        for response in (await client.get("/"), await post_event(client, "/lamp/toggle")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
            assert "strict-transport-security" not in response.headers
    async with client_of(make_app(hsts_max_age=600), base_url="https://testserver") as client:
        assert (await client.get("/")).headers["strict-transport-security"] == "max-age=600"
    async with client_of(make_app(hsts_max_age=0), base_url="https://testserver") as client:
        assert "strict-transport-security" not in (await client.get("/")).headers


async def test_pages_get_the_policy_and_every_script_carries_the_page_nonce():
    async with client_of(make_app()) as client:
        first, second = await client.get("/"), await client.get("/")
        event_answer = await post_event(client, "/lamp/toggle")
    policy = first.headers["content-security-policy"]
    [nonce] = re.findall(r"'nonce-([A-Za-z0-9_-]{16,})'", policy)
    for directive in ("script-src 'nonce-", "'strict-dynamic'", "'unsafe-eval'", "object-src 'none'",
                      "frame-ancestors 'self'", "base-uri 'self'", "connect-src 'self'"):
        assert directive in policy
    scripts = re.findall(r"<script\b[^>]*>", first.text)
    assert len(scripts) >= 2  # StarModel's headers and the page's own
    assert all(f'nonce="{nonce}"' in tag for tag in scripts), scripts
    assert nonce not in second.headers["content-security-policy"]  # one per page
    assert "content-security-policy" not in event_answer.headers  # SSE answers are no documents


async def test_the_policy_can_be_replaced_reported_only_or_turned_off():
    custom = "default-src 'self'; script-src 'nonce-{nonce}' 'unsafe-eval'"
    async with client_of(make_app(csp=custom)) as client:
        page = await client.get("/")
    [nonce] = re.findall(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert page.headers["content-security-policy"] == custom.replace("{nonce}", nonce)
    assert f'nonce="{nonce}"' in page.text
    async with client_of(make_app(csp_report_only=True)) as client:
        page = await client.get("/")
    assert "content-security-policy" not in page.headers
    assert "'unsafe-eval'" in page.headers["content-security-policy-report-only"]
    async with client_of(make_app(csp="off")) as client:
        page = await client.get("/")
    assert "content-security-policy" not in page.headers
    assert "nonce=" not in page.text
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_a_policy_the_app_sets_on_a_route_is_kept():
    sm = make_app()

    @sm.app.route("/embed")
    def embed():
        from starlette.responses import HTMLResponse

        return HTMLResponse("<p>embed</p>", headers={"Content-Security-Policy": "frame-ancestors *"})

    async with client_of(sm) as client:
        page = await client.get("/embed")
    assert page.headers.get_list("content-security-policy") == ["frame-ancestors *"]


def test_outside_a_request_there_is_no_nonce():
    assert csp_nonce() is None


async def test_events_still_need_the_datastar_header_with_the_new_middleware():
    async with client_of(make_app()) as client:
        json_only = {"Content-Type": "application/json"}
        refused = await client.post("/lamp/toggle", content="{}", headers=json_only)
        assert refused.status_code == 403
        assert (await client.post("/lamp/toggle", content="{}", headers=DATASTAR)).status_code == 200


async def test_an_attached_app_keeps_its_headers_which_get_the_nonce():
    from fasthtml.common import FastHTML, P

    app = FastHTML(hdrs=[Script(src="/mine.js")], secret_key="test")

    @app.route("/")
    def home():
        return P("hello")

    StarModel(app=app, entities=[Lamp], secret_key="test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
        page = await client.get("/")
    [nonce] = re.findall(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert re.search(rf'<script src="/mine.js" nonce="{nonce}">', page.text), page.text

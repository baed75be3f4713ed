"""Test helpers for apps that use the auth plugin: sign an ``EventClient`` session in or out
through the real sign-in routes."""

from __future__ import annotations

import base64
import json

import httpx

from starmodel.adapters.web_fasthtml import SESSION_KEY
from starmodel.contrib.auth.plugin import Auth
from starmodel.testing.client import BrowserSession

__all__ = ["sign_in", "sign_out"]


async def sign_in(session: BrowserSession, email: str, password: str) -> None:
    """Sign ``session`` (an ``EventClient`` or one of its ``session()``s) in as ``email``;
    ``AssertionError`` with the page's answer if the app refuses."""
    auth = _auth(session)
    response = await session.http.post(
        auth.paths.login, data={"email": email, "password": password}, headers=_headers(session)
    )
    if response.status_code != 200:
        raise AssertionError(f"sign-in as {email} refused ({response.status_code}): {response.text[:300]}")
    _keep_cookie(session, response)


async def sign_out(session: BrowserSession) -> None:
    """Sign ``session`` out (``POST {prefix}/logout``)."""
    response = await session.http.post(_auth(session).paths.logout, headers=_headers(session))
    if response.status_code != 200:
        raise AssertionError(f"sign-out refused ({response.status_code}): {response.text[:300]}")
    _keep_cookie(session, response)


def _auth(session: BrowserSession) -> Auth:
    auth = Auth.of(session.sm)
    if auth is None:
        raise LookupError("this app has no auth: install it with Auth(sm)")
    return auth


def _headers(session: BrowserSession) -> dict[str, str]:
    return {"Datastar-Request": "true", "Origin": str(session.http.base_url).rstrip("/")}


def _keep_cookie(session: BrowserSession, response: httpx.Response) -> None:
    """Keep only the session cookie the server just set (a cookie the client stored under
    another domain before its first request would otherwise go along with it), and follow
    the new session id."""
    name = getattr(session.sm.app, "session_cookie", None)
    fresh = next((c for c in response.cookies.jar if c.name == name), None)
    if fresh is None or not fresh.value:
        return
    jar = session.http.cookies.jar
    for stale in [c for c in jar if c.name == name and c.domain != fresh.domain]:
        jar.clear(stale.domain, stale.path, stale.name)
    try:
        data = json.loads(base64.b64decode(fresh.value.split(".", 1)[0]))
    except ValueError:
        return
    if isinstance(data, dict) and isinstance(data.get(SESSION_KEY), str):
        session.session_id = data[SESSION_KEY]

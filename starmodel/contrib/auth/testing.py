"""Test helpers for apps that use the auth plugin: sign an ``EventClient`` session in or out
(here, or everywhere) through the real routes, and copy a session's cookie to another browser."""

from __future__ import annotations

import base64
import json

import httpx

from starmodel.adapters.driving.web.identity import SESSION_KEY
from starmodel.contrib.auth.plugin import UID_KEY, Auth
from starmodel.testing.client import BrowserSession

__all__ = ["copy_cookie", "sign_in", "sign_out", "sign_out_everywhere"]


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


async def sign_out_everywhere(session: BrowserSession, user_id: int | None = None) -> None:
    """End every sign-in of ``user_id`` (default: the user signed in on ``session``), through
    ``POST {prefix}/users/{id}/signout`` as ``session`` (staff, or that user)."""
    if user_id is None:
        signed_in = _cookie_data(session).get(UID_KEY)
        if not isinstance(signed_in, int):
            raise AssertionError("sign_out_everywhere: nobody is signed in on this session")
        user_id = signed_in
    path = _auth(session).paths.sign_out_everywhere(user_id)
    response = await session.http.post(path, headers=_headers(session))
    if response.status_code != 200:
        raise AssertionError(f"sign out everywhere refused ({response.status_code}): {response.text[:300]}")
    _keep_cookie(session, response)


def copy_cookie(session: BrowserSession) -> BrowserSession:
    """Another browser holding a copy of ``session``'s cookie as it is now (what somebody who
    copied it would send later)."""
    name = getattr(session.sm.app, "session_cookie", None)
    copy = session.session()
    for cookie in session.http.cookies.jar:
        if cookie.name == name and cookie.value:
            copy.http.cookies.jar.clear()
            copy.http.cookies.set(cookie.name, cookie.value, domain=cookie.domain, path=cookie.path)
            copy.session_id = session.session_id
    return copy


def _cookie_data(session: BrowserSession) -> dict[str, object]:
    name = getattr(session.sm.app, "session_cookie", None)
    value = next((c.value for c in session.http.cookies.jar if c.name == name and c.value), None)
    try:
        data = json.loads(base64.b64decode(value.split(".", 1)[0])) if value else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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

"""Helpers for the auth plugin's tests: fast hashing, a browser that keeps every answer, apps."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
from argon2 import PasswordHasher

from starmodel import StarModel
from starmodel.contrib.auth import Auth, Passwords
from starmodel.testing import parse_sse

BASE_URL = "http://testserver"
DATASTAR = {"Datastar-Request": "true"}
PASSWORD = "correct horse battery"
COOKIE = "starmodel_session"


def fast_passwords() -> Passwords:
    """argon2id with the smallest cost: the same code path, a thousand times faster."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Browser:
    """One browser over ASGI: a cookie jar, and every response it got (bodies read), so a
    test can scan them all at the end."""

    def __init__(self, sm: StarModel, responses: list[httpx.Response] | None = None) -> None:
        self.responses = [] if responses is None else responses
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sm.app),
            base_url=BASE_URL,
            event_hooks={"response": [self._keep]},
        )

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.responses.append(response)

    async def post_form(self, path: str, data: dict[str, str] | None = None,
                        **headers: str) -> httpx.Response:
        """A form posted as Datastar's ``contentType: 'form'`` does."""
        body = urlencode(data or {})
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self.http.post(path, content=body, headers={**DATASTAR, **form, **headers})

    async def login(self, email: str, password: str = PASSWORD, **fields: str) -> httpx.Response:
        return await self.post_form("/auth/login", {"email": email, "password": password, **fields})

    async def register(self, email: str, password: str = PASSWORD, **fields: str) -> httpx.Response:
        data = {"email": email, "password": password, "password_confirm": password, **fields}
        return await self.post_form("/auth/register", data)

    def session(self) -> dict[str, Any]:
        """What the signed session cookie holds now."""
        value = self.http.cookies.get(COOKIE)
        if not value:
            return {}
        return json.loads(base64.b64decode(value.split(".", 1)[0]))

    async def aclose(self) -> None:
        await self.http.aclose()


def redirect_target(response: httpx.Response) -> str | None:
    """Where an SSE answer sends the browser (``window.location.assign(...)``), if anywhere."""
    for event in parse_sse(response.text):
        for line in event.values("elements"):
            if "window.location.assign(" in line:
                return json.loads(line.split("window.location.assign(", 1)[1].split(")</script>", 1)[0])
    return None


def patched(response: httpx.Response) -> str:
    """Every element an SSE answer patches, as one HTML string."""
    return "\n".join(line for event in parse_sse(response.text) for line in event.values("elements"))


def make_app(tmp_path: Any, *entities: Any, **options: Any) -> tuple[StarModel, Auth]:
    auth_options = {k: options.pop(k) for k in list(options) if k in
                    ("prefix", "after_login", "after_logout", "registration", "rate_limit", "sign_in_for")}
    options.setdefault("database_url", f"sqlite:///{tmp_path}/auth.db")
    sm = StarModel(entities=list(entities), secret_key="auth-tests", **options)
    auth = Auth(sm, passwords=fast_passwords(), **auth_options)
    return sm, auth


@contextlib.asynccontextmanager
async def running(sm: StarModel) -> AsyncIterator[StarModel]:
    async with sm.app.router.lifespan_context(sm.app):
        yield sm

"""The app the sign-out process tests serve (``starmodel run tests/integration/auth_app.py``):
accounts, the admin, a page that says who is signed in and an event only a signed-in user may
call. ``AUTH_SIGN_IN_FOR`` (seconds) sets how long a sign-in lasts.

Run as a real server process with the settings of the test's environment; never imported by
the test process itself.
"""

from __future__ import annotations

import os

from argon2 import PasswordHasher
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from starmodel import Entity, StarModel, StateStore, event
from starmodel.contrib.auth import Auth, Passwords, signed_in


class Notebook(Entity):
    """Per browser session, in Redis (every process sees it); only a signed-in user writes."""

    model_config = {"store": StateStore.SERVER_REDIS, "namespace": "notebook"}
    lines: int = 0

    @event(allow=signed_in)
    def write(self) -> None:
        self.lines += 1


sm = StarModel(entities=[Notebook])
auth = Auth(
    sm,
    passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)),
    sign_in_for=float(os.environ.get("AUTH_SIGN_IN_FOR", 3600)),
    rate_limit=None,
)
sm.admin()
app = sm.app


@app.route("/me")
async def me(request: Request) -> Response:
    user = await auth.user(request)
    if user is None:
        return auth.login_redirect(request)
    return PlainTextResponse(user.email)

"""Who is asking: the browser's session id (in the signed session cookie) and the signed-in
user, through the hooks an auth plugin declares (``StarModel.use_auth``).

An auth plugin reads and renews the session through the functions here (``peek_session_id``,
``set_session_id``, ``remember_user``) rather than through the cookie's layout.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from starmodel.adapters.driving.web.requests import EventRequest
from starmodel.core.errors import ConfigurationError

__all__ = [
    "SESSION_KEY",
    "USER_SCOPE_KEY",
    "AuthHooks",
    "UserLoader",
    "peek_session_id",
    "remember_user",
    "session_id",
    "set_session_id",
]

SESSION_KEY = "starmodel_sid"
USER_SCOPE_KEY = "starmodel.user"

UserLoader = Callable[[Request | EventRequest], Awaitable[Any]]
"""``await load_user(request)``: the signed-in user of a request, or ``None``."""


@dataclass(frozen=True)
class AuthHooks:
    """What an auth plugin gives the app.

    Attributes:
        load_user: the signed-in user of a request (``None`` for a visitor); called at most
            once per request, its answer is ``ctx.user`` of an event whose ``allow`` rule,
            entity policy or ``rate`` needs it (other events run without calling it).
        login_url: where pages that need a signed-in user send visitors.
        logout_url: where a sign-out button posts.
    """

    load_user: UserLoader | None = None
    login_url: str | None = None
    logout_url: str | None = None


def session_id(request: Request | EventRequest) -> str:
    """The browser's session id, created (and set in the signed cookie) on first use."""
    session = request.scope.get("session")
    if session is None:
        raise ConfigurationError("StarModel needs a session middleware; attach it to a FastHTML app")
    sid = session.get(SESSION_KEY)
    if not isinstance(sid, str) or not sid:
        sid = secrets.token_urlsafe(18)
        session[SESSION_KEY] = sid
    return sid


def peek_session_id(request: Request | EventRequest) -> str | None:
    """The browser's session id if it has one (none is created)."""
    session = request.scope.get("session")
    sid = session.get(SESSION_KEY) if isinstance(session, dict) else None
    return sid if isinstance(sid, str) and sid else None


def set_session_id(request: Request | EventRequest, sid: str, *, clear: bool = False) -> None:
    """Give the browser the session id ``sid`` (emptying the session first when ``clear``):
    a sign-in or sign-out does, so that an id planted before is worth nothing after it."""
    session = request.scope["session"]
    if clear:
        session.clear()
    session[SESSION_KEY] = sid


def remember_user(request: Request | EventRequest, user: Any) -> None:
    """Make ``user`` the signed-in user for the rest of this request (``None``: a visitor)."""
    request.scope[USER_SCOPE_KEY] = user

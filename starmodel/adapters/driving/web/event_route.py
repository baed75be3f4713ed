"""The route of every event of an app: ``(method, path)`` matched in one dict lookup of the
event table, the request handed to the web adapter's ``handle_event``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from starmodel.adapters.driving.web.requests import EventRequest

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["EventRoute", "front"]


def front(routes: list[BaseRoute]) -> int:
    """Where a route goes that must come before the app's own: right after the event route,
    which stays first (an event is matched in one dict lookup, before any path pattern is
    tried), or first when there is none yet."""
    for index, route in enumerate(routes):
        if isinstance(route, EventRoute):
            return index + 1
    return 0


class EventRoute(BaseRoute):
    """Matches ``(method, path)`` of every event of the app's entities in one dict lookup."""

    path = "/{entity events}"
    name = "starmodel-events"
    methods: set[str] = set()

    def __init__(self, web: WebApp) -> None:
        self.web = web

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        table = self.web.event_table()
        path = scope["path"]
        if (scope["method"].lower(), path) in table:
            return Match.FULL, {"endpoint": self.handle}
        if path in self.web.event_paths():
            return Match.PARTIAL, {"endpoint": self.handle}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.web.handle_event(EventRequest.from_scope(scope, receive))
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)

"""Who a request really comes from behind a reverse proxy: ``X-Forwarded-Proto`` and
``X-Forwarded-For``, believed only from trusted proxies (``STARMODEL_TRUSTED_PROXIES``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrustedProxies"]


class TrustedProxies:
    """ASGI middleware: behind a trusted reverse proxy, the scheme and client address of a
    request are the ones the proxy saw (``X-Forwarded-Proto``, ``X-Forwarded-For``).

    The headers are believed only when the direct peer is one of ``proxies`` (addresses or
    networks); ``X-Forwarded-For`` is read from the right, skipping trusted proxies, so a
    client cannot pass itself off as another by sending the header itself.
    """

    answer_start_only = True
    """It acts on the request and the answer's start only (see ``live.http.LiveDetach``)."""

    def __init__(self, app: ASGIApp, proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self._known: dict[str, bool | None] = {}  # address -> trusted; None: no address

    def _lookup(self, host: str) -> bool | None:
        if host in self._known:
            return self._known[host]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            found: bool | None = None
        else:
            found = any(address in network for network in self.networks)
        if len(self._known) < 10_000:
            self._known[host] = found
        return found

    def trusted(self, host: str) -> bool:
        """Whether ``host`` is the address of a trusted proxy."""
        return bool(self._lookup(host))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.networks and scope["type"] in ("http", "websocket") and client and self.trusted(client[0]):
            scope = self._forwarded(scope)
        await self.app(scope, receive, send)

    def _forwarded(self, scope: Scope) -> Scope:
        proto: str | None = None
        hops: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()  # the nearest proxy's
            elif name == b"x-forwarded-for":
                hops.extend(part.strip() for part in value.decode("latin-1").split(","))
        scope = dict(scope)
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if proto == "https" else "ws"
            else:
                scope["scheme"] = proto
        for hop in reversed(hops):
            trusted = self._lookup(hop)
            if trusted is None:
                break  # a hop that is no address: believe nothing further left
            scope["client"] = (hop, 0)
            if not trusted:
                break
        return scope

"""Whether a request may run an event: sent by the Datastar client, and from the app's own
site (``Sec-Fetch-Site``) and origin (``Origin``, or one of ``allowed_origins``)."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from starmodel.adapters.driving.web.requests import EventRequest

__all__ = ["cross_site_refusal"]

_SAFE_SITES = ("same-origin", "none")


def cross_site_refusal(
    request: Request | EventRequest, allowed_origins: Collection[str], *, datastar: bool = True
) -> str | None:
    """Why this request may not run an event, or ``None`` if it may (``datastar=False``: for
    JSON API calls, which need no Datastar header)."""
    if datastar and request.headers.get("datastar-request") != "true":
        return "Events need the Datastar-Request header (sent by the Datastar client)"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _SAFE_SITES:
        return f"Cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.scope.get('scheme', 'http')}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != own and origin.rstrip("/") not in allowed_origins:
            return f"Cross-origin request refused (Origin: {origin})"
    return None

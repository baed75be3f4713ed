"""The security headers browsers act on: Content-Security-Policy with a per-page nonce, HSTS
under https, ``nosniff``, ``Referrer-Policy`` (who the client is behind a proxy: ``proxies.py``).

The default policy works with Datastar: Datastar compiles ``data-*`` expressions with
``Function()`` (``'unsafe-eval'``); the page's own scripts carry the page's nonce, and
``'strict-dynamic'`` lets the scripts they add run (Datastar re-creates every ``<script>`` of
a patch, e.g. ``script()`` / ``redirect()`` actions). Inline ``style`` attributes and
``<style>`` elements stay allowed (Tailwind's in-browser build and components write them).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from fastcore.xml import FT
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DEFAULT_CSP",
    "NoncedElement",
    "SecurityHeaders",
    "content_security_policy",
    "csp_nonce",
    "with_nonces",
]

DEFAULT_CSP = (
    "default-src 'self'; "
    "script-src 'nonce-{nonce}' 'strict-dynamic' 'unsafe-eval' 'self'; "
    "style-src 'self' 'unsafe-inline'{cdn}; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:{cdn}; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'self'"
)
"""The policy pages get unless ``Settings.csp`` says otherwise; ``{nonce}`` is the page's
nonce, ``{cdn}`` the CDN hosts when ``assets="cdn"``."""
CDN_HOSTS = " https://cdn.jsdelivr.net https://cdn.tailwindcss.com"
REFERRER_POLICY = "strict-origin-when-cross-origin"

class _RequestNonce:
    """A request's nonce, made when first asked for (events and streams never need one)."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: str | None = None

    @property
    def value(self) -> str:
        if self._value is None:
            self._value = secrets.token_urlsafe(16)
        return self._value


_nonce: ContextVar[_RequestNonce | None] = ContextVar("starmodel_csp_nonce", default=None)


def csp_nonce() -> str | None:
    """The nonce of the page being rendered (``None`` outside a request, or with the policy
    off: FastHTML then leaves the attribute out). Give it to your own scripts:
    ``Script(src="/app.js", nonce=csp_nonce())``; StarModel's page headers carry it already."""
    found = _nonce.get()
    return None if found is None else found.value


class NoncedElement(FT):
    """A ``<script>`` / ``<style>`` element that carries the nonce of the page it is rendered
    in (and no ``nonce`` attribute outside a request)."""

    def __init__(self, element: FT) -> None:
        super().__init__(element.tag, element.children, element.attrs, void_=element.void_)

    def __ft__(self) -> FT:
        nonce = csp_nonce()
        attrs = {**self.attrs, "nonce": nonce} if nonce else self.attrs
        return FT(self.tag, self.children, attrs, void_=self.void_)


def with_nonces(items: Iterable[Any]) -> list[Any]:
    """``items`` (page headers, nested lists allowed) with every ``<script>`` and ``<style>``
    made a ``NoncedElement``."""
    found: list[Any] = []
    for item in items:
        if isinstance(item, list | tuple):
            found.append(with_nonces(item))
        elif isinstance(item, FT) and not isinstance(item, NoncedElement) and item.tag in ("script", "style"):
            found.append(NoncedElement(item))
        else:
            found.append(item)
    return found


def content_security_policy(setting: str, nonce: str, *, cdn: bool = False) -> str | None:
    """The policy text for one page: ``setting`` is ``default``, ``off`` or a policy in which
    ``{nonce}`` stands for the page's nonce."""
    if setting == "off":
        return None
    if setting == "default":
        return DEFAULT_CSP.format(nonce=nonce, cdn=CDN_HOSTS if cdn else "")
    return setting.replace("{nonce}", nonce)


class SecurityHeaders:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy`` on every
    answer, ``Strict-Transport-Security`` on answers to https requests, and the
    Content-Security-Policy (with a fresh nonce, see ``csp_nonce``) on HTML pages. A header
    the app set itself is left as it is."""

    answer_start_only = True
    """It acts on the request and the answer's start only (see ``live.http.LiveDetach``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        csp: str = "default",
        report_only: bool = False,
        hsts_max_age: int = 0,
        cdn: bool = False,
    ) -> None:
        self.app = app
        self.csp = csp
        self.csp_header = b"content-security-policy" + (b"-report-only" if report_only else b"")
        self.hsts = f"max-age={hsts_max_age}".encode() if hsts_max_age > 0 else None
        self.cdn = cdn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = _RequestNonce() if self.csp != "off" else None
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self._headers(list(message.get("headers", [])), nonce, https)
                message = {**message, "headers": headers}
            await send(message)

        token = _nonce.set(nonce)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _nonce.reset(token)

    def _headers(
        self, headers: list[tuple[bytes, bytes]], nonce: _RequestNonce | None, https: bool
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        if b"x-content-type-options" not in present:
            headers.append((b"x-content-type-options", b"nosniff"))
        if b"referrer-policy" not in present:
            headers.append((b"referrer-policy", REFERRER_POLICY.encode()))
        if https and self.hsts is not None and b"strict-transport-security" not in present:
            headers.append((b"strict-transport-security", self.hsts))
        if nonce is not None and self.csp_header not in present:
            content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
            if content_type.lower().startswith(b"text/html"):
                policy = content_security_policy(self.csp, nonce.value, cdn=self.cdn)
                if policy is not None:
                    headers.append((self.csp_header, policy.encode("latin-1")))
        return headers

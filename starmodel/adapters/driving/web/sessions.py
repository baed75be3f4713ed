"""Signed cookie sessions (same cookie format as Starlette's), verifying each distinct cookie
once: an app answering many events per second spends its time on events, not on HMACs."""

from __future__ import annotations

import json
import time
from base64 import b64decode, b64encode
from typing import Any, Literal

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SignedCookieSessions"]

_CACHE_LIMIT = 10_000
_EXPIRED = "expires=Thu, 01 Jan 1970 00:00:00 GMT"


class Session(dict[str, Any]):
    """The session dict handlers see; remembers whether it was changed."""

    modified = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        self.modified = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self.modified = True
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self.modified = True
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.modified = True
        super().update(*args, **kwargs)


class SignedCookieSessions:
    """ASGI middleware: ``scope["session"]`` from a signed, timestamped cookie.

    Takes the arguments FastHTML passes to its ``sess_cls``. A cookie is re-issued only when
    the session changes; verified cookies are remembered (bounded) with their signing time,
    so expiry (``max_age``) is still enforced on every request. The cookie is ``Secure`` when
    the request came over https (behind a proxy: see ``TrustedProxies``), or always with
    ``https_only``.
    """

    answer_start_only = True
    """It acts on the request and the answer's start only (see ``live.http.LiveDetach``)."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 3600,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
    ) -> None:
        self.app = app
        self.signer = itsdangerous.TimestampSigner(str(secret_key))
        self.cookie = session_cookie
        self.max_age = max_age
        self.path = path
        flags = f"httponly; samesite={same_site}"
        if https_only:
            flags += "; secure"
        if domain is not None:
            flags += f"; domain={domain}"
        self.flags = flags
        self._verified: dict[str, tuple[str, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = _read_cookie(scope, self.cookie)
        data = self._load(raw) if raw else None
        session = Session(data or {})
        scope["session"] = session
        had_session = bool(data)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                headers = list(message.get("headers", []))
                flags = self.flags
                if scope.get("scheme") in ("https", "wss") and "; secure" not in flags:
                    flags += "; secure"
                if session:
                    headers.append((b"set-cookie", self._cookie_header(session, flags).encode("latin-1")))
                elif had_session:
                    expired = f"{self.cookie}=null; path={self.path}; {_EXPIRED}; {flags}"
                    headers.append((b"set-cookie", expired.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _load(self, raw: str) -> dict[str, Any] | None:
        cached = self._verified.get(raw)
        now = time.time()
        if cached is not None:
            payload, signed_at = cached
            if self.max_age is None or now - signed_at <= self.max_age:
                return _decode(payload)
            del self._verified[raw]
            return None
        try:
            value, signed_at_dt = self.signer.unsign(raw.encode("latin-1"), return_timestamp=True)
        except (BadSignature, UnicodeEncodeError):
            return None
        signed_at = signed_at_dt.timestamp()
        if self.max_age is not None and now - signed_at > self.max_age:
            return None
        payload = value.decode("latin-1")
        data = _decode(payload)
        if data is None:
            return None
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[raw] = (payload, signed_at)
        return data

    def _cookie_header(self, session: dict[str, Any], flags: str) -> str:
        payload = b64encode(json.dumps(session).encode("utf-8"))
        signed = self.signer.sign(payload).decode("latin-1")
        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        return f"{self.cookie}={signed}; path={self.path}; {max_age}{flags}"


def _decode(payload: str) -> dict[str, Any] | None:
    try:
        data = json.loads(b64decode(payload))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _read_cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                cookie_name, sep, cookie_value = part.strip().partition("=")
                if sep and cookie_name == name:
                    return cookie_value.strip('"')
    return None

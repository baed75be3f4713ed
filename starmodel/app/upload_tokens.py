"""Signed, expiring strings that carry an upload's facts between requests (and processes): the
ticket a browser sends with every chunk, and the token that hands a finished upload to an event
or a form. Signed with the app's secret (HMAC-SHA256), so neither can be forged or altered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["TokenSigner"]

_MAX_TOKEN = 4096


class TokenSigner:
    """Signs JSON-ready values for one purpose (``ticket``, ``file``); ``read`` gives back only
    what this app signed for that purpose and has not expired, else ``None``."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._key = hashlib.sha256(f"starmodel-upload:{purpose}:{secret}".encode()).digest()

    def sign(self, value: dict[str, Any], *, ttl: float) -> str:
        body = json.dumps({**value, "exp": int(time.time() + ttl)}, separators=(",", ":"), sort_keys=True)
        data = _b64(body.encode())
        return f"{data}.{self._mac(data)}"

    def read(self, token: str) -> dict[str, Any] | None:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        data, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(data)):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        except ValueError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("exp"), int) or value["exp"] < time.time():
            return None
        return value

    def _mac(self, data: str) -> str:
        return _b64(hmac.new(self._key, data.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")

"""Reading the sign-in forms' bodies (url-encoded, bounded) and checking where to go next."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

from starmodel.adapters.driving.web.requests import declared_length

__all__ = ["FORM_TYPE", "MAX_FORM_BYTES", "FormRefused", "read_form", "safe_next"]

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16_384  # a 1024-byte password, percent-encoded, and the rest fit easily
MAX_NEXT = 2048


class FormRefused(Exception):
    """The body is not a form these pages read; ``status`` and ``message`` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request, fields: Iterable[str]) -> dict[str, str]:
    """The ``fields`` of a url-encoded form body (missing ones absent, others ignored)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != FORM_TYPE:
        raise FormRefused(415, f"Send the form as {FORM_TYPE}")
    if declared_length(request.headers.get("content-length")) > MAX_FORM_BYTES:
        raise FormRefused(413, "The form is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused(413, "The form is too large")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "The form could not be read") from None
    wanted = set(fields)
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in wanted:
            values.setdefault(name, value)
    return values


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site (``/orders?page=2``), else ``default``: never
    another site (``//evil.example``, ``https://...``, ``/\\evil``) nor a script URL."""
    if not target or len(target) > MAX_NEXT or not is_local_path(target):
        return default
    return target


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a same-site path that browsers cannot read as another host."""
    if not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return False  # browsers turn "\" into "/" and drop tabs and newlines
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc

"""StarModel's own static files (``/_starmodel/static/...``: its client script), served with
names checked first, and the empty answer to ``/favicon.ico``."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

__all__ = ["STATIC_DIR", "no_favicon", "plain_file_name", "serve_file"]

STATIC_DIR = Path(__file__).parent / "static"
_MAX_FILE_NAME = 1024


async def no_favicon(request: Request) -> Response:
    """Spares every page a 404 in the console (an app's own favicon route wins)."""
    return Response(status_code=204)


def serve_file(folder: Path, name: str) -> Response:
    """The file ``name`` under ``folder``, or 404 for anything else (no way out of it)."""
    not_found = PlainTextResponse("Not found", status_code=404)
    if not plain_file_name(name):
        return not_found
    root = folder.resolve()
    target = (root / name).resolve()
    try:
        if not target.is_relative_to(root) or not target.is_file():
            return not_found
    except OSError:  # a name the file system refuses (too long, ...)
        return not_found
    return FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})


def plain_file_name(name: str) -> bool:
    """Whether ``name`` is a relative path of plain parts (no ``..``, no empty part, no
    control character or backslash, not overlong) that may name a served file."""
    parts = name.split("/")
    return (
        len(name) <= _MAX_FILE_NAME
        and name.isprintable()
        and "\\" not in name
        and all(part not in ("", ".", "..") and len(part) <= 255 for part in parts)
    )

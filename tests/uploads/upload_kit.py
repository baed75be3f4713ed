"""Helpers for upload tests: small valid files, a client that uploads as the page script does,
and what a files directory holds."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import httpx

from starmodel import StarModel
from starmodel.testing import AsgiTransport

DATASTAR = {"Datastar-Request": "true"}


def png(width: int = 2, height: int = 2, extra: int = 0) -> bytes:
    """A valid PNG image (``extra`` bytes of a private chunk make it as large as wanted)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if extra:
        body += chunk(b"smXt", b"\x00" * extra)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def client(sm: StarModel, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AsgiTransport(sm.app), base_url="http://testserver", headers={**DATASTAR, **headers}
    )


async def upload(
    http: httpx.AsyncClient,
    target: str,
    data: bytes,
    *,
    name: str = "picture.png",
    content_type: str = "image/png",
    key: str | None = None,
    attach: bool = True,
    chunk: int | None = None,
    declared_size: int | None = None,
) -> httpx.Response:
    """Upload as ``uploads.js`` does; the answer of the last request (the refusal, if any)."""
    begun = await http.post("/_starmodel/uploads", json={
        "target": target, "key": key, "name": name, "type": content_type, "attach": attach,
        "size": len(data) if declared_size is None else declared_size,
    })
    if begun.status_code != 200:
        return begun
    ticket, size = begun.json()["ticket"], chunk or begun.json()["chunk"]
    offset = 0
    while True:
        part = data[offset: offset + size]
        answer = await http.put(f"/_starmodel/uploads/{ticket}?offset={offset}", content=part)
        if answer.status_code != 200 or "token" in answer.json():
            return answer
        offset = answer.json()["received"]
        if offset >= len(data):
            return answer


def stored_files(root: Path) -> dict[str, list[str]]:
    """The names under ``files/`` and ``staging/`` of a local file store."""
    found: dict[str, list[str]] = {"files": [], "staging": []}
    for part in found:
        folder = root / part
        if folder.is_dir():
            found[part] = sorted(p.name for p in folder.rglob("*") if p.is_file())
    return found


def nothing_stored(root: Path) -> bool:
    return stored_files(root) == {"files": [], "staging": []}


def json_of(response: httpx.Response) -> Any:
    return response.json()

"""Uploading files in tests as the page script does (announce, then chunks): ``await
upload(client, Profile, "avatar", data, name="me.png", content_type="image/png")``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starmodel.core.entity import Entity
from starmodel.testing.client import BrowserSession

__all__ = ["UploadResult", "upload"]


@dataclass
class UploadResult:
    """How an upload ended: its status, and the token and file facts (when it went through)
    or the refusal (``error``, ``errors`` by field)."""

    status: int
    token: str | None = None
    attached: bool = False
    file: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


async def upload(
    session: BrowserSession,
    entity_cls: type[Entity],
    target: str,
    data: bytes,
    *,
    name: str = "file",
    content_type: str = "application/octet-stream",
    key: Any = None,
    attach: bool = True,
    chunk: int | None = None,
) -> UploadResult:
    """Upload ``data`` to ``entity_cls``'s file field ``target`` (or an event's file parameter,
    ``"event.param"``) from ``session``'s tab. ``attach=False`` only stages it: its ``token``
    is then what an event parameter or a form takes. ``key``: the record's, for records."""
    headers = {"Datastar-Request": "true", "X-StarModel-Tab": session.tab_id}
    begun = await session.http.post("/_starmodel/uploads", headers=headers, json={
        "target": f"{entity_cls.namespace()}/{target}", "key": None if key is None else str(key),
        "name": name, "size": len(data), "type": content_type, "attach": attach,
    })
    answer = begun
    if begun.status_code == 200:
        ticket, size = begun.json()["ticket"], chunk or int(begun.json()["chunk"])
        offset = 0
        while True:
            answer = await session.http.put(
                f"/_starmodel/uploads/{ticket}", params={"offset": str(offset)},
                content=data[offset: offset + size], headers=headers,
            )
            if answer.status_code != 200 or "token" in answer.json():
                break
            offset = int(answer.json()["received"])
    body = answer.json()
    if answer.status_code != 200:
        return UploadResult(answer.status_code, error=body.get("error"), errors=body.get("errors") or {})
    return UploadResult(200, token=body["token"], attached=bool(body["attached"]), file=body["file"])

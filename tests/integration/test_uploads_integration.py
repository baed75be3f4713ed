"""File fields on PostgreSQL and across processes: two apps share PostgreSQL, Redis (the bus)
and a files directory, as two server processes would. An upload through one app is attached
to a SQL record, its progress reaches a tab connected to the other app, and that app serves
the file; an event refused by the database keeps no file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from sqlmodel import Field

from starmodel import Entity, FileRules, StarModel, StoredFile, event
from starmodel.testing import AsgiTransport, parse_sse

Document = Annotated[StoredFile | None, FileRules(max_size="2MB", accept=("application/pdf", "text/plain"))]


class Contract(Entity, table=True):
    model_config = {"namespace": "ip_contract"}
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True)
    scan: Document = None

    @event
    def create(cls, reference: str):
        cls.records.add(Contract(reference=reference))

    @event
    def sign(self, scan: Document, copy_as: str = ""):
        """Keeps the scan; with ``copy_as``, also files a copy under that reference (refused
        by the database when it is taken)."""
        self.scan = scan
        if copy_as:
            Contract.records.add(Contract(reference=copy_as))


@pytest.fixture
async def two_apps(
    redis_url: str, redis_prefix: str, tmp_path: Path, postgres: Any
) -> AsyncIterator[tuple[StarModel, StarModel, Path]]:
    files = tmp_path / "files"
    apps = [
        StarModel(
            entities=[Contract], secret_key="in-process", redis_url=redis_url, redis_prefix=redis_prefix,
            database_url=postgres.url, files_dir=str(files), migrations_dir=str(tmp_path / "no-migrations"),
        )
        for _ in range(2)
    ]
    async with AsyncExitStack() as stack:
        for sm in apps:
            await stack.enter_async_context(sm.app.router.lifespan_context(sm.app))
        yield apps[0], apps[1], files


def client(sm: StarModel, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsgiTransport(sm.app), base_url="http://testserver",
                             headers={"Datastar-Request": "true"}, cookies=cookies)


async def upload(
    http: httpx.AsyncClient, data: bytes, key: str | None, *, attach: bool = True
) -> dict[str, Any]:
    begun = await http.post("/_starmodel/uploads", json={
        "target": "ip_contract/scan", "key": key, "name": "scan.pdf", "size": len(data),
        "type": "application/pdf", "attach": attach})
    assert begun.status_code == 200, begun.text
    ticket, offset = begun.json()["ticket"], 0
    while True:
        part = data[offset:offset + 100_000]
        answer = await http.put(f"/_starmodel/uploads/{ticket}?offset={offset}", content=part)
        assert answer.status_code == 200, answer.text
        if "token" in answer.json():
            return dict(answer.json())
        offset = answer.json()["received"]


def kept(files: Path) -> list[str]:
    return sorted(p.name for p in files.rglob("*") if p.is_file()) if files.is_dir() else []


async def test_an_upload_through_one_process_is_seen_and_served_by_the_other(two_apps) -> None:
    a, b, files = two_apps
    scan = b"%PDF-1.5 " + b"z" * 450_000
    stream, body = b.web.open_live_stream("viewer", "viewer-tab", watch=[Contract])
    await body.__anext__()
    try:
        async with client(a) as alice:
            assert (await alice.post("/ip_contract/create", params={"reference": "C-1"})).status_code == 200
            (record,) = await a.reads.list(Contract)
            key = str(record.id)
            done = await upload(alice, scan, key)
            assert done["attached"] is True

            async def progress_seen() -> list[dict[str, Any]]:
                while True:
                    seen = [
                        item.signals["ip_contract"][key]
                        for text in [raw.decode() for raw in stream.pending] for item in parse_sse(text)
                        if key in item.signals.get("ip_contract", {})
                    ]
                    if any(s.get("scan") for s in seen) and any(
                        s.get("_uploads", {}).get("scan", {}).get("state") == "done" for s in seen
                    ):
                        return seen
                    await asyncio.sleep(0.02)

            seen = await asyncio.wait_for(progress_seen(), 10)
        percents = [s["_uploads"]["scan"]["percent"] for s in seen if "_uploads" in s]
        assert percents == [22, 44, 66, 88, 100]
        stored = await b.find(Contract, key)
        assert stored is not None and isinstance(stored.scan, StoredFile)
        assert next(s["scan"] for s in seen if s.get("scan"))["id"] == stored.scan.id
        async with client(b) as anyone:
            got = await anyone.get(f"/_starmodel/files/ip_contract/{key}/scan/{stored.scan.id}")
            assert got.status_code == 200 and got.content == scan
    finally:
        await body.aclose()
    assert kept(files) == [stored.scan.id]


async def test_an_event_refused_by_postgresql_keeps_no_file(two_apps) -> None:
    a, _, files = two_apps
    async with client(a) as http:
        for reference in ("C-1", "C-2"):
            created = await http.post("/ip_contract/create", params={"reference": reference})
            assert created.status_code == 200
        first = next(r for r in await a.reads.list(Contract) if r.reference == "C-1")
        staged = await upload(http, b"%PDF-1.4 signed", None, attach=False)
        refused = await http.post("/ip_contract/sign", params={
            "_key": str(first.id), "scan": staged["token"], "copy_as": "C-2"})
        assert refused.status_code == 422, refused.text
        assert "already taken" in refused.text
        assert (await a.find(Contract, first.id)).scan is None  # type: ignore[union-attr]
        assert kept(files) == []
        staged = await upload(http, b"%PDF-1.4 signed", None, attach=False)
        signed = await http.post("/ip_contract/sign", params={"_key": str(first.id), "scan": staged["token"]})
        assert signed.status_code == 200, signed.text
        scan = (await a.find(Contract, first.id)).scan  # type: ignore[union-attr]
        assert scan is not None and kept(files) == [scan.id]

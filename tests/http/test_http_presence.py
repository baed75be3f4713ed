"""Presence through a real server: the live stream's ``smhere`` signal joins a tab to what its
page shows, a stream whose client goes away leaves at once, a signed-in user is shown by name
(escaped), and a tab asking to look at what it may not read (or at a class that keeps no
presence, or with a key presence refuses) joins nothing."""

import asyncio
import json
from dataclasses import dataclass

import httpx
from sm_http import DATASTAR, SSEReader, live_server, open_stream
from sqlmodel import Field

from starmodel import CallContext, Entity, StarModel


def members(ctx: CallContext) -> bool:
    return ctx.user is not None


class Note(Entity, table=True):
    model_config = {"presence": True, "namespace": "hp_note"}  # type: ignore[assignment]
    id: int | None = Field(default=None, primary_key=True)
    text: str = ""


class Vault(Entity):
    model_config = {"scope": "global", "presence": True, "namespace": "hp_vault", "policy": {"read": members}}
    n: int = 0


@dataclass
class Member:
    id: int
    name: str
    email: str = "member@example.com"


def make_app(tmp_path) -> StarModel:
    sm = StarModel(entities=[Note, Vault], secret_key="test", database_url=f"sqlite:///{tmp_path}/n.db")

    async def from_header(request):
        name = request.headers.get("x-member")
        return Member(len(name), name) if name else None

    sm.user_loader = from_header
    return sm


def looking_at(named: dict) -> dict[str, str]:
    return {"datastar": json.dumps({"smhere": named})}


async def count_reaches(stream: SSEReader, count: int, timeout: float = 5.0) -> str:
    """Read the stream until a presence push says ``count`` viewers; returns its HTML."""
    async with asyncio.timeout(timeout):
        while True:
            event = await stream.next(timeout=timeout)
            html = "\n".join(event.values("elements"))
            if 'id="presence-hp_note-1"' in html and f'data-count="{count}"' in html:
                return html


async def test_tabs_join_what_their_page_shows_and_leave_when_their_stream_ends(tmp_path):
    sm = make_app(tmp_path)
    note_1 = looking_at({"hp_note": {"1": True}})
    async with live_server(sm) as base, httpx.AsyncClient(base_url=base) as ann, \
            httpx.AsyncClient(base_url=base) as bob:
        async with open_stream(ann, "GET", "/_starmodel/live", params=note_1,
                               headers={**DATASTAR, "x-member": "Ann Lee <script>"}) as ann_sees:
            shown = await count_reaches(ann_sees, 1)
            assert 'title="Ann Lee &lt;script&gt;"' in shown and "<script>" not in shown  # escaped
            assert ">AL<" in shown  # her initials
            async with open_stream(
                bob, "GET", "/_starmodel/live", params=note_1, headers=DATASTAR
            ) as bob_sees:
                both = await count_reaches(bob_sees, 2)
                assert "Guest " in both
                await count_reaches(ann_sees, 2)
                assert len(await sm.presence.of(Note, 1)) == 2
            # bob's client closed its stream: the server sees it end, ann sees him go
            await count_reaches(ann_sees, 1)
        async with asyncio.timeout(5):
            while await sm.presence.of(Note, 1):
                await asyncio.sleep(0.02)


async def test_a_tab_joins_nothing_it_may_not_read_or_that_keeps_no_presence(tmp_path):
    sm = make_app(tmp_path)
    asked = looking_at({
        "hp_vault": {"global": True},  # members only: this visitor may not read it
        "hp_note": {"../../etc": True, "2": False, "x" * 65: True},  # keys presence refuses
        "unknown": {"1": True},
    })
    async with live_server(sm) as base, httpx.AsyncClient(base_url=base) as visitor:
        async with open_stream(visitor, "GET", "/_starmodel/live", params=asked, headers=DATASTAR) as seen:
            await seen.next(timeout=5)  # the opening state
            await asyncio.sleep(0.2)
            assert await sm.presence.of(Vault) == []
            assert sm.presence._connections == {}
        member = {**DATASTAR, "x-member": "Ann"}
        async with open_stream(visitor, "GET", "/_starmodel/live", params=asked, headers=member) as seen:
            await seen.next(timeout=5)
            async with asyncio.timeout(5):
                while [v.name for v in await sm.presence.of(Vault)] != ["Ann"]:
                    await asyncio.sleep(0.02)


async def test_a_malformed_presence_signal_is_ignored(tmp_path):
    sm = make_app(tmp_path)
    async with live_server(sm) as base, httpx.AsyncClient(base_url=base) as client:
        for named in ([1, 2], {"hp_note": ["1"]}, {"hp_note": "1"}, "x"):
            async with open_stream(client, "GET", "/_starmodel/live", params=looking_at(named),
                                   headers=DATASTAR) as seen:
                first = await seen.next(timeout=5)
                assert first.type == "datastar-patch-signals"
        await asyncio.sleep(0.1)
        assert await sm.presence.of(Note, 1) == []

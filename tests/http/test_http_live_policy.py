"""A live stream carries a record class's values only to callers its ``read`` policy admits:
a visitor asking to watch members-only records gets nothing of them over the stream (only the
data-free "something changed" stamp), a signed-in member gets the values."""

import asyncio
import json
from dataclasses import dataclass

import httpx
from sm_http import DATASTAR, live_server, open_stream, post_event
from sqlmodel import Field

from starmodel import CallContext, Entity, StarModel, event


def members(ctx: CallContext) -> bool:
    return ctx.user is not None


class Memo(Entity, table=True):
    model_config = {"policy": {"read": members, "*": True}}  # type: ignore[assignment]
    id: int | None = Field(default=None, primary_key=True)
    text: str = ""

    @event
    def write(cls, text: str):
        cls.records.add(Memo(text=text))


@dataclass
class Member:
    name: str


def make_app(tmp_path) -> StarModel:
    sm = StarModel(entities=[Memo], secret_key="test", database_url=f"sqlite:///{tmp_path}/m.db")

    async def from_header(request):
        name = request.headers.get("x-member")
        return Member(name) if name else None

    sm.user_loader = from_header
    return sm


def test_watched_topics_follow_the_read_policy(tmp_path):
    sm = make_app(tmp_path)
    watch = {"smwatch": {"memo": True}}
    assert sm.live_lists.watched_topics(watch, "sid") == set()
    assert sm.live_lists.watched_topics(watch, "sid", Member("ann")) == {"entity:memo"}
    assert sm.live_lists.watched_topics({"smwatch": {"memo": "stamp"}}, "sid") == {"stamp:memo"}


async def signals_with(stream, text: str) -> dict:
    """The first signals patch mentioning ``text`` (the stream's opening state comes first)."""
    while True:
        event = await stream.next(timeout=5)
        if event.type == "datastar-patch-signals" and text in json.dumps(event.signals):
            return event.signals


async def test_a_visitors_stream_never_carries_members_only_values(tmp_path):
    sm = make_app(tmp_path)
    watch = {"datastar": json.dumps({"smwatch": {"memo": True}})}
    as_member = {**DATASTAR, "x-member": "ann"}
    async with (
        live_server(sm) as base,
        httpx.AsyncClient(base_url=base) as visitor,
        httpx.AsyncClient(base_url=base) as member,
        open_stream(visitor, "GET", "/_starmodel/live", params=watch, headers=DATASTAR) as seen,
        open_stream(member, "GET", "/_starmodel/live", params=watch, headers=as_member) as member_seen,
    ):
        await asyncio.sleep(0.2)
        written = await post_event(member, "/memo/write", headers={"x-member": "ann"}, text="members only")
        assert written.status_code == 200
        assert await signals_with(member_seen, "members only")
        got = []
        try:
            while True:  # whatever the visitor gets in the meantime: never a memo's text
                got.append(await seen.next(timeout=0.5))
        except TimeoutError:
            pass
        assert "members only" not in json.dumps([event.data for event in got])

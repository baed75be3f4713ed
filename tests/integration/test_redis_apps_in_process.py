"""Two StarModel apps in this test process sharing the real Redis (as two server processes
would): requests go through httpx's ASGI transport, each app runs its own lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from integration_support import post_event, signals_of

from starmodel import DomainEvent, Entity, StarModel, StateStore, event


@dataclass(frozen=True)
class TicketSold(DomainEvent):
    """The app's own fact: a dataclass with JSON-ready fields, so it can cross processes."""

    seat: int
    buyer: str


class BoxOffice(Entity):
    model_config = {"store": StateStore.SERVER_REDIS, "scope": "global", "namespace": "ip_box_office"}
    sold: int = 0

    @event
    def sell(self, buyer: str) -> None:
        self.sold += 1
        self.emit(TicketSold(seat=self.sold, buyer=buyer))


class Received:
    """A handler that remembers what it was given."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, fact: Any) -> None:
        self.events.append(fact)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while len(self.events) < count:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"{count} facts expected within {timeout}s, got {self.events}") from None


@pytest.fixture
async def two_apps(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[StarModel, StarModel]]:
    """Two apps serving ``BoxOffice`` on this test's Redis prefix, both started (lifespan)."""
    apps = [
        StarModel(
            entities=[BoxOffice], secret_key="in-process", redis_url=redis_url,
            redis_prefix=redis_prefix, migrations_dir=str(tmp_path / "no-migrations"),
        )
        for _ in range(2)
    ]
    async with AsyncExitStack() as stack:
        for sm in apps:
            await stack.enter_async_context(sm.app.router.lifespan_context(sm.app))
        yield apps[0], apps[1]


async def sell(sm: StarModel, buyer: str) -> int:
    """Run ``BoxOffice.sell`` through the app's HTTP interface; the seat sold."""
    transport = httpx.ASGITransport(app=sm.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await post_event(client, "/ip_box_office/sell", buyer=buyer)
    assert answer.status_code == 200, answer.text
    (patch,) = signals_of(answer.text)
    return int(patch["ip_box_office"]["sold"])


async def test_a_domain_event_reaches_everywhere_handlers_of_the_other_app_local_ones_stay_home(
    two_apps: tuple[StarModel, StarModel],
) -> None:
    """``sm.subscribe(TicketSold, handler, everywhere=True)``: the handler runs in both apps
    for an event emitted by either one (the fact crossed through Redis, rebuilt as a
    ``TicketSold``); a handler subscribed without ``everywhere`` runs only in the app whose
    event emitted it, once, before the answer."""
    a, b = two_apps
    everywhere_a, everywhere_b, only_a, only_b = Received(), Received(), Received(), Received()
    a.subscribe(TicketSold, everywhere_a, everywhere=True)
    b.subscribe(TicketSold, everywhere_b, everywhere=True)
    a.subscribe(TicketSold, only_a)
    b.subscribe(TicketSold, only_b)

    assert await sell(a, "ada") == 1
    assert only_a.events == [TicketSold(seat=1, buyer="ada")]  # at once, in A
    await everywhere_b.wait_for(1)
    await everywhere_a.wait_for(1)
    assert everywhere_a.events == everywhere_b.events == [TicketSold(seat=1, buyer="ada")]
    assert only_b.events == []

    assert await sell(b, "bob") == 2  # and the other way round
    assert only_b.events == [TicketSold(seat=2, buyer="bob")]
    await everywhere_a.wait_for(2)
    await everywhere_b.wait_for(2)
    assert everywhere_a.events == everywhere_b.events == [
        TicketSold(seat=1, buyer="ada"), TicketSold(seat=2, buyer="bob"),
    ]
    assert only_a.events == [TicketSold(seat=1, buyer="ada")]  # B's sale never ran A's


async def test_an_everywhere_handler_only_the_other_app_has_still_receives_the_fact(
    two_apps: tuple[StarModel, StarModel],
) -> None:
    """Only app B subscribes (e.g. a process of its own that mails tickets); an event of app A
    emits the fact: B's ``everywhere`` handler receives it all the same."""
    a, b = two_apps
    everywhere_b = Received()
    b.subscribe(TicketSold, everywhere_b, everywhere=True)
    assert await sell(a, "ada") == 1
    await everywhere_b.wait_for(1, timeout=3)
    assert everywhere_b.events == [TicketSold(seat=1, buyer="ada")]

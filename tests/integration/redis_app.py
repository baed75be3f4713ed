"""The app the Redis process tests serve (``starmodel run tests/integration/redis_app.py``).

Run as a real server process: its settings come from the environment the test gives it
(``REDIS_URL``, ``STARMODEL_REDIS_PREFIX``, ``SECRET_KEY``, ``DATABASE_URL``...). It is never
imported by the test process itself (its SQL table would join that process's metadata).
"""

from __future__ import annotations

from typing import Any

from fasthtml.common import Div, P
from sqlmodel import Field
from starlette.requests import Request

from starmodel import Entity, StarModel, StateStore, event


class Hits(Entity):
    """One counter for everybody, in Redis: every process shares it."""

    model_config = {"store": StateStore.SERVER_REDIS, "scope": "global"}
    count: int = 0

    @event
    def increment(self, amount: int = 1) -> None:
        self.count += amount


class Visits(Entity):
    """A Redis counter per browser session (the session cookie works on every process)."""

    model_config = {"store": StateStore.SERVER_REDIS, "scope": "session"}
    count: int = 0

    @event
    def increment(self) -> None:
        self.count += 1


class Burst(Entity):
    """A Redis counter that is forgotten one second after its last change."""

    model_config = {"store": StateStore.SERVER_REDIS, "scope": "global", "ttl": 1}
    count: int = 0
    label: str = "fresh"

    @event
    def increment(self) -> None:
        self.count += 1
        self.label = "used"


class Clicks(Entity):
    """A global counter in memory: each process has its own (``per_process``, said so)."""

    model_config = {"scope": "global", "per_process": True}
    count: int = 0

    @event
    def increment(self) -> None:
        self.count += 1


class Note(Entity, table=True):
    """A SQL record (``DATABASE_URL``); its table is created when the app starts."""

    id: int | None = Field(default=None, primary_key=True)
    text: str = ""
    stars: int = 0

    @event
    def create(cls, text: str) -> None:
        cls.records.add(Note(text=text))

    @event
    def star(self) -> None:
        self.stars += 1


sm = StarModel(title="Redis process tests")
app = sm.app


@app.route("/")
async def home(request: Request) -> Any:
    """The page: the shared counters as the store holds them now."""
    hits = await sm.load(Hits)
    clicks = await sm.load(Clicks)
    return Div(
        P(f"hits={hits.count}", id="hits"),
        P(f"clicks={clicks.count}", id="clicks"),
    )

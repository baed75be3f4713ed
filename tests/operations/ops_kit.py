"""Helpers for the operations tests: a small app, an ASGI client, captured JSON log lines."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from starmodel import Entity, StarModel, event
from starmodel.adapters.driving.operations.logs import JsonFormatter

DATASTAR = {"Datastar-Request": "true"}


class Tally(Entity):
    """Global: one count for everybody."""

    model_config = {"namespace": "ops_tally", "scope": "global"}
    count: int = 0

    @event
    def add(self, amount: int = 1) -> None:
        if amount > 100:
            raise ValueError("too much at once")
        self.count += amount

    @event
    def crash(self) -> None:
        raise RuntimeError("boom")


def make_app(*entities: type[Entity], **options: Any) -> StarModel:
    return StarModel(entities=list(entities or [Tally]), secret_key="ops-tests", **options)


@contextlib.asynccontextmanager
async def client(sm: StarModel) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan) and an HTTP client talking to it over ASGI."""
    async with sm.app.router.lifespan_context(sm.app):
        transport = httpx.ASGITransport(app=sm.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@contextlib.contextmanager
def json_lines(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Every log line of every logger while the block runs, as the JSON objects a server
    configured by ``starmodel run --log-format json`` writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())

"""The demo as the fuzz tests serve it: built like ``demo/app.py`` (its entities, shop, activity
feed, live todo rows and home page) on a SQLite file of the test's own, running in an event
loop of its own; its routes as fuzz targets; what it stores, as a snapshot; and the checks
every answer must pass."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import itsdangerous
from asgi_driver import Answer, Request, send

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))

import demo.app as demo_app  # noqa: E402
from demo.activity import SHARED_STORE  # noqa: E402
from demo.pages import install_showcase  # noqa: E402
from demo.products import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD_DEFAULT  # noqa: E402
from starmodel import Entity, StarModel, StateStore  # noqa: E402
from starmodel.adapters.driving.web.event_route import EventRoute  # noqa: E402
from starmodel.adapters.driving.web.identity import SESSION_KEY  # noqa: E402
from starmodel.app.settings import Settings  # noqa: E402
from starmodel.core.events import EventSpec  # noqa: E402

__all__ = [
    "DEMO_ADMIN_EMAIL",
    "DEMO_ADMIN_PASSWORD_DEFAULT",
    "TALLIES",
    "DemoUnderTest",
    "LogRecords",
    "Tally",
    "Target",
    "Visitors",
    "demo_app",
    "problems_with",
    "session_cookie",
    "tally",
    "targets_of",
]

SECRET = "fuzz-tests-secret-key"
JOB_FED = frozenset({"chart", "board_pulse"})
"""Entities that the demo's ``sm.every`` jobs change every second or two, whatever requests
come: a request's snapshots leave them out."""
ORIGIN = b"http://testserver"
TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


@dataclass(frozen=True)
class Target:
    """One route to fuzz: an event (with its entity and spec) or any other route."""

    methods: tuple[str, ...]
    path: str
    entity: type[Entity] | None = None
    spec: EventSpec | None = None

    @property
    def name(self) -> str:
        return f"{'|'.join(self.methods)} {self.path}"


def targets_of(sm: Any) -> list[Target]:
    """Every route an app serves: each event of its event table, then its other routes."""
    found: list[Target] = []
    for route in sm.app.router.routes:
        if isinstance(route, EventRoute):
            for (method, path), (entity, spec) in sorted(sm.event_table().items(), key=lambda item: item[0]):
                found.append(Target((method.upper(),), path, entity, spec))
        else:
            methods = tuple(sorted(getattr(route, "methods", None) or ()))
            found.append(Target(methods or ("GET",), route.path))
    return found


@dataclass(frozen=True)
class Visitors:
    """Who the fuzz requests come from: a signed-in staff member and a visitor (their session
    cookies), on an app serving ``entities``."""

    entities: tuple[type[Entity], ...]
    staff_cookie: bytes
    visitor_cookie: bytes


def session_cookie(session_id: str, secret: str = SECRET) -> bytes:
    """A session cookie as the app signs it, for a session of ``session_id``."""
    payload = base64.b64encode(json.dumps({SESSION_KEY: session_id}).encode())
    signed = itsdangerous.TimestampSigner(secret).sign(payload).decode("latin-1")
    return f"starmodel_session={signed}".encode("latin-1")


@dataclass
class Tally:
    """What a fuzz run sent and saw."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500 or status == 0)

    def add(self, answer: Answer) -> None:
        self.requests += 1
        self.statuses[answer.status] += 1

    def line(self, label: str) -> str:
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return f"{label}: {self.requests} requests sent, {self.server_errors} answered 5xx ({shown})"


TALLIES: dict[str, Tally] = {}
"""Every fuzz run's tally, by name (printed at the end of the test session)."""


def tally(name: str) -> Tally:
    return TALLIES.setdefault(name, Tally())


class LogRecords(logging.Handler):
    """Keeps the records of errors and of anything logged with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def take(self) -> list[str]:
        """The records kept since the last call, formatted with their tracebacks."""
        found = [logging.Formatter().format(record) for record in self.records]
        self.records.clear()
        return found


def problems_with(answer: Answer) -> list[str]:
    """What is wrong with an answer to a hostile request (nothing, for a clean 2xx-4xx)."""
    found = []
    if answer.status == 0:
        found.append("no answer")
    elif answer.status >= 500:
        found.append(f"status {answer.status}")
    if answer.error is not None:
        found.append(f"the app raised {type(answer.error).__name__}: {answer.error}")
    if TRACEBACK.search(answer.body):
        found.append("a traceback in the body")
    return found


class DemoUnderTest:
    """The demo app, started in its own event loop, with a staff session and seed records."""

    def __init__(self, folder: Path) -> None:
        if SHARED_STORE is not StateStore.SERVER_MEMORY:
            raise RuntimeError("REDIS_URL was set when the demo was imported: fuzz it without")
        self.db_path = folder / "demo.db"
        assets = folder / "assets"
        assets.mkdir()
        (assets / "datastar.js").write_text("// a stand-in asset\n")
        settings = Settings(
            secret_key=SECRET,
            database_url=f"sqlite:///{self.db_path}",
            migrations_dir=str(folder / "migrations"),  # none: tables are created at start
            assets_dir=str(assets),
            redis_url=None,
        )
        self.sm = StarModel(settings=settings, packages=["demo"], title="StarModel demo")
        install_showcase(self.sm)  # what demo/app.py serves: entities, shop, feeds, jobs, pages
        self.loop = asyncio.new_event_loop()
        self._lifespan = contextlib.AsyncExitStack()
        self.state: dict[str, Any] = {}
        self.visitor_cookie = b""
        self.staff_cookie = b""

    # --- running -------------------------------------------------------------------------

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def start(self) -> None:
        lifespan = self.sm.app.router.lifespan_context(self.sm.app)
        self.state = self.run(self._lifespan.enter_async_context(lifespan)) or {}
        self.visitor_cookie = session_cookie("fuzz-visitor")
        self.staff_cookie = self.run(self._sign_in_staff())
        self.run(self._seed())

    def stop(self) -> None:
        try:
            self.run(self.settle())
            self.run(self._lifespan.aclose())
        finally:
            self.loop.close()

    async def send(self, request: Request) -> Answer:
        return await send(self.sm.app, request, self.state)

    async def settle(self) -> None:
        """Stop what requests left running (background and streaming events), so that the
        next snapshot sees still state."""
        running: list[asyncio.Task[Any]] = self.sm.dispatcher.running_tasks()
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=10)
        await asyncio.sleep(0)

    @property
    def visitors(self) -> Visitors:
        return Visitors(tuple(self.sm.entities()), self.staff_cookie, self.visitor_cookie)

    async def _sign_in_staff(self) -> bytes:
        form = urlencode({"email": DEMO_ADMIN_EMAIL, "password": DEMO_ADMIN_PASSWORD_DEFAULT})
        answer = await self.send(Request("POST", "/auth/login", b"", (
            (b"datastar-request", b"true"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"origin", ORIGIN),
            (b"cookie", session_cookie("fuzz-staff")),
        ), form.encode()))
        cookie = answer.cookies().get("starmodel_session")
        if answer.status != 200 or not cookie:
            raise RuntimeError(f"the staff account could not sign in: {answer.status} {answer.body[:300]!r}")
        return b"starmodel_session=" + cookie.encode("latin-1")

    async def _seed(self) -> None:
        """A few records for keys to hit: products 1-3, todos 1-3."""
        for number in (1, 2, 3):
            product = json.dumps({"name": f"Product {number}", "price": "9.50", "stock": 5})
            made = await self.send(Request("POST", "/api/products", b"", (
                (b"content-type", b"application/json"), (b"origin", ORIGIN), (b"cookie", self.staff_cookie),
            ), product.encode()))
            todo = json.dumps({"todo": {"new_title": f"Todo {number}"}})
            added = await self.send(Request("POST", "/todo/create", b"", (
                (b"datastar-request", b"true"), (b"content-type", b"application/json"),
                (b"origin", ORIGIN), (b"cookie", self.visitor_cookie),
            ), todo.encode()))
            if made.status != 201 or added.status != 200:
                raise RuntimeError(f"seeding failed: {made.status} {made.body[:200]!r} / {added.status}")
        await self.settle()

    # --- what it stores ------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """Every row of the SQLite file and every memory entity, as plain data (but for the
        entities the demo's periodic jobs change on their own, ``JOB_FED``)."""
        stored: dict[str, Any] = {}
        for entity_cls in self.sm.entities():
            if entity_cls.namespace() in JOB_FED:
                continue
            if entity_cls.options().store is StateStore.SERVER_MEMORY:
                memory = self.sm.services.repository_for(entity_cls)
                records = await memory.list(entity_cls, limit=1_000_000)
                stored[entity_cls.namespace()] = [
                    (r._sm_key, r._sm_version, r.model_dump(mode="json")) for r in records
                ]
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in sorted(tables):
                stored[f"sql:{table}"] = sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        return stored


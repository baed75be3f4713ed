"""Hostile requests to the demo served by ``starmodel run demo`` on PostgreSQL (a database of
the test's own), over real HTTP: the routes that query the database (lists, records, the API,
the admin, record events, sign-in). None is answered 5xx, its log shows no error or traceback,
a refused request changes no row, and the server serves as before afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_driver import Request
from demo_under_test import (
    DEMO_ADMIN_EMAIL,
    DEMO_ADMIN_PASSWORD_DEFAULT,
    ORIGIN,
    REPO,
    Tally,
    Target,
    Visitors,
    session_cookie,
    tally,
    targets_of,
)
from demo_under_test import demo_app as demo_module
from fuzz_requests import requests_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SECRET = "fuzz-postgres-secret"
RUN = "starmodel run demo (PostgreSQL)"
EXAMPLES_PER_ROUTE = 12
DATABASE_PATHS = ("/api/products", "/products", "/admin", "/_starmodel/ui", "/product/", "/todo/", "/auth/")
TABLES = ("product", "todo", "users")
SERVER_SETTINGS = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STARMODEL_APP", "STARMODEL_MIGRATIONS_DIR")

ROUTES = [t for t in targets_of(demo_module.sm) if t.path.startswith(DATABASE_PATHS)]


def _blocking(work: Any) -> Any:
    return asyncio.run(work)


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(**PG, database="test", timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class DemoProcess:
    """``starmodel run demo`` on a free port, its output in a log file; rows read directly."""

    def __init__(self, database: str, log_path: Path) -> None:
        self.database = database
        self.log_path = log_path
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection | None = None
        self.log_offset = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
        env.update(
            DATABASE_URL=f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{self.database}",
            SECRET_KEY=SECRET,
            STARMODEL_MIGRATIONS_DIR=str(self.log_path.parent / "no-migrations"),
            PYTHONUNBUFFERED="1",
        )
        command = [sys.executable, "-m", "starmodel.cli.main", "run", "demo", "--port", str(self.port),
                   "--no-reload", "--log-level", "warning"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo exited at start:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/products", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the demo did not answer in 30 s:\n{self.log_path.read_text()}")
        self.conn = self.loop.run_until_complete(asyncpg.connect(**PG, database=self.database, timeout=5))
        self.new_log()

    def stop(self) -> None:
        if self.conn is not None:
            self.loop.run_until_complete(self.conn.close())
        self.loop.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def rows(self) -> dict[str, list[str]]:
        assert self.conn is not None
        found = {}
        for table in TABLES:
            records = self.loop.run_until_complete(self.conn.fetch(f'SELECT * FROM "{table}"'))
            found[table] = sorted(repr(tuple(record.values())) for record in records)
        return found

    def new_log(self) -> str:
        """What the server logged since the last call."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            text = log.read()
        self.log_offset += len(text)
        return text.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"sm_fuzz_{secrets.token_hex(4)}"
    try:
        _blocking(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG['host']}:{PG['port']} is needed for this test ({exc})")
    try:
        yield name
    finally:
        _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    process = DemoProcess(database, tmp_path_factory.mktemp("fuzz-pg") / "demo.log")
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http(server: DemoProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def visitors(server: DemoProcess, http: httpx.Client) -> Visitors:
    """A signed-in staff member and a visitor; three products and three todos to aim at."""
    staff = session_cookie("fuzz-staff", SECRET)
    signed_in = http.post(
        "/auth/login",
        content=f"email={DEMO_ADMIN_EMAIL}&password={DEMO_ADMIN_PASSWORD_DEFAULT}",
        headers={"Datastar-Request": "true", "Content-Type": "application/x-www-form-urlencoded",
                 "Origin": server.url, "Cookie": staff.decode()},
    )
    assert signed_in.status_code == 200, signed_in.text
    staff = b"starmodel_session=" + signed_in.cookies["starmodel_session"].encode()
    http.cookies.clear()
    visitor = session_cookie("fuzz-visitor", SECRET)
    for number in (1, 2, 3):
        made = http.post("/api/products", json={"name": f"Product {number}", "stock": 5},
                         headers={"Origin": server.url, "Cookie": staff.decode()})
        added = http.post("/todo/create", json={"todo": {"new_title": f"Todo {number}"}},
                          headers={"Datastar-Request": "true", "Cookie": visitor.decode()})
        assert made.status_code == 201 and added.status_code == 200, (made.text, added.text)
        http.cookies.clear()
    server.new_log()
    return Visitors(tuple(demo_module.sm.entities()), staff, visitor)


def send(http: httpx.Client, server: DemoProcess, request: Request) -> httpx.Response:
    """``request`` over HTTP (the Origin of the fuzzed requests made this server's own)."""
    headers = [
        (name, server.url.encode() if value == ORIGIN else value)
        for name, value in request.headers
        if name != b"content-length"  # the HTTP layer refuses a wrong one before the app sees it
    ]
    url = httpx.URL(server.url + request.path.replace("?", "%3F").replace("#", "%23"), query=request.query)
    try:
        return http.request(request.method, url, headers=headers, content=request.body)
    finally:
        http.cookies.clear()  # each request carries the cookie it was drawn with, or none


def test_every_database_route_is_fuzzed() -> None:
    assert len(ROUTES) >= 15
    paths = {target.path for target in ROUTES}
    assert paths >= {"/api/products", "/api/products/{key}", "/admin/{namespace}", "/todo/remove"}


STRATEGIES: dict[str, st.SearchStrategy[Request]] = {}


@pytest.mark.parametrize("target", ROUTES, ids=lambda target: target.name)
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_hostile_requests_on_postgresql_are_refused_cleanly(
    server: DemoProcess, http: httpx.Client, visitors: Visitors, target: Target, data: Any
) -> None:
    if target.name not in STRATEGIES:
        STRATEGIES[target.name] = requests_for(target, visitors)
    request = data.draw(STRATEGIES[target.name], label="request")
    before = server.rows()
    try:
        answer = send(http, server, request)
    except (httpx.InvalidURL, httpx.LocalProtocolError):  # nothing HTTP can carry: no server sees it
        return
    counted: Tally = tally(RUN)
    counted.statuses[answer.status_code] += 1
    counted.requests += 1
    found = []
    if answer.status_code >= 500:
        found.append(f"status {answer.status_code}")
    if "Traceback" in answer.text:
        found.append("a traceback in the answer")
    if 400 <= answer.status_code < 500 and server.rows() != before:
        found.append(f"a refused request ({answer.status_code}) changed rows")
    logged = server.new_log()
    if "Traceback" in logged or "ERROR" in logged:
        found.append(f"logged: {logged[-2000:]}")
    assert not found, f"{request.describe()}\n" + "\n".join(found) + f"\nanswer: {answer.text[:400]}"


def test_the_demo_on_postgresql_serves_as_before(server: DemoProcess, http: httpx.Client, visitors: Visitors):
    listed = http.get("/api/products", params={"per_page": 100})
    assert listed.status_code == 200 and listed.json()["total"] >= 3
    assert http.get("/").status_code == 200
    answer = http.post("/counter/increment", params={"amount": "2"}, content=b"{}",
                       headers={"Datastar-Request": "true", "Origin": server.url,
                                "Cookie": session_cookie("after", SECRET).decode()})
    assert answer.status_code == 200 and '"count":2' in answer.text
    counted = tally(RUN)
    print(counted.line(RUN))
    assert counted.requests >= len(ROUTES) * EXAMPLES_PER_ROUTE // 2
    assert counted.server_errors == 0
    assert "Traceback" not in server.new_log()

"""Real server processes of ``redis_app.py`` (``starmodel run``), and how tests talk to them:
events POSTed as the Datastar client sends them, live streams read event by event.

A "browser" is one ``httpx.AsyncClient`` used with absolute URLs: cookies are not kept per
port, so its session cookie goes to every server process, as a browser's would behind a load
balancer without sticky sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from integration_support import DATASTAR, SSEEvent, StreamReader, open_stream, signals_of

__all__ = [
    "APP_MODULE",
    "EVENT_ID",
    "SECRET_KEY",
    "MakeServer",
    "RedisOutage",
    "SSEEvent",
    "ServerProcess",
    "answer_signals",
    "browser",
    "change_of",
    "live",
    "post",
    "server_env",
    "start_together",
    "wait_for",
]

APP_MODULE = Path(__file__).resolve().with_name("redis_app.py")
SECRET_KEY = "redis-process-tests"  # one key for every process: a session cookie works on each
EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9]+$")  # a live event id: <bus epoch>-<bus sequence>
LIVE = "/_starmodel/live"


@dataclass
class ServerProcess:
    """One ``starmodel run redis_app.py --port P --no-reload`` process; its output (stdout and
    stderr) goes to ``log_path``, kept across restarts."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "starmodel.cli.main", "run", str(APP_MODULE),
            "--port", str(self.port), "--no-reload", "--log-level", "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def wait_up(self, timeout: float = 30.0) -> None:
        """Poll until the server answers (a cheap route that touches no store)."""
        assert self.proc is not None, f"{self.name} was not started"
        async with httpx.AsyncClient(timeout=1.0) as client:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server {self.name} exited early:\n{self.log()}")
                try:
                    await client.get(f"{self.url}/favicon.ico")
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        raise AssertionError(f"server {self.name} did not come up in {timeout}s:\n{self.log()}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Terminate (SIGTERM) and wait without blocking the event loop; kill if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(timeout):
                while self.proc.poll() is None:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"server {self.name} did not stop in {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        """Teardown: stop at once, whatever state the test left it in."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_no_traceback(self) -> None:
        text = self.log()
        assert "Traceback" not in text, f"server {self.name} logged a traceback:\n{text}"


class MakeServer(Protocol):
    """The ``app_servers`` fixture: a new (not yet started) server process."""

    def __call__(self, name: str, database_url: str | None = None) -> ServerProcess: ...


async def start_together(*servers: ServerProcess) -> None:
    """Start servers in parallel (only for servers that do not share a SQL database: two
    processes creating one table at the same moment would race)."""
    for server in servers:
        server.start()
    await asyncio.gather(*(server.wait_up() for server in servers))


def browser() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    return httpx.AsyncClient(timeout=15.0, limits=limits)


async def post(
    client: httpx.AsyncClient, server: ServerProcess, path: str, key: Any = None, **args: Any
) -> httpx.Response:
    """POST an event as the Datastar client does: its header, the page's Origin, a JSON body;
    arguments JSON-encoded in the query (``key`` picks a record, verbatim)."""
    query = {name: json.dumps(value) for name, value in args.items()}
    if key is not None:
        query["_key"] = str(key)
    headers = {**DATASTAR, "Origin": server.url, "Content-Type": "application/json"}
    return await client.post(f"{server.url}{path}", params=query, headers=headers, content="{}")


def answer_signals(answer: httpx.Response, namespace: str) -> dict[str, Any]:
    """What an event answer sets for ``namespace`` (without the ``_errors`` it clears)."""
    (patch,) = signals_of(answer.text)
    return {k: v for k, v in patch[namespace].items() if k != "_errors"}


@contextlib.asynccontextmanager
async def live(
    client: httpx.AsyncClient,
    server: ServerProcess,
    *,
    watch: str | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[StreamReader]:
    """A tab's live stream on ``server`` (watching the record class ``watch``, resuming after
    ``last_event_id``)."""
    headers = dict(DATASTAR)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {"datastar": json.dumps({"smwatch": {watch: True}})} if watch else None
    async with open_stream(client, f"{server.url}{LIVE}", headers=headers, params=params) as reader:
        yield reader


async def change_of(reader: StreamReader, namespace: str, timeout: float = 5.0) -> SSEEvent:
    """The next patch-signals event of the stream that touches ``namespace`` (others skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await reader.next(timeout)
            if found.type == "datastar-patch-signals" and namespace in found.signals:
                return found


async def wait_for(
    check: Callable[[], Any], what: str, timeout: float = 15.0, interval: float = 0.1
) -> Any:
    """Poll ``await check()`` until it returns something other than ``None`` or ``False``
    (which it returns); fail saying ``what`` if it does not in time. Exceptions count as
    "not yet" (the last one is reported)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            result = await check()
            if result is not None and result is not False:
                return result
            last = result
        except Exception as exc:
            last = exc
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


def server_env(
    *, redis_url: str, redis_prefix: str, database_url: str, migrations_dir: Path
) -> dict[str, str]:
    """The environment of a server process: the shell's, without StarModel settings, plus
    the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS and not k.startswith("STARMODEL_")}
    env.update(
        REDIS_URL=redis_url,
        STARMODEL_REDIS_PREFIX=redis_prefix,
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=database_url,
        STARMODEL_MIGRATIONS_DIR=str(migrations_dir),
        STARMODEL_ASSETS="cdn",
        PYTHONUNBUFFERED="1",
    )
    return env


_SETTINGS = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}


# --- stopping and starting the machine's Redis ---------------------------------------------

REDIS_PING = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"]
REDIS_SHUTDOWN = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"]
REDIS_START = [  # the machine's own start command (as in .ci/run)
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]


def redis_answers() -> bool:
    try:
        done = subprocess.run(REDIS_PING, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return done.stdout.strip() == "PONG"


class RedisOutage:
    """Stops the real Redis at 127.0.0.1:6379 and starts it again (blocking calls: use
    ``asyncio.to_thread`` from a test). Redis keeps nothing on disk: its data is gone after
    the restart."""

    def stop(self) -> None:
        subprocess.run(REDIS_SHUTDOWN, capture_output=True, timeout=10)
        self._wait(lambda: not redis_answers(), "Redis did not stop")

    def start(self) -> None:
        if not redis_answers():
            subprocess.run(REDIS_START, capture_output=True, timeout=10)
        self._wait(redis_answers, "Redis did not answer PONG after its start command")

    @staticmethod
    def _wait(done: Callable[[], bool], failure: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(failure)
            time.sleep(0.05)

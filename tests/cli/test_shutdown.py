"""A clean stop of `starmodel run --workers 2` with Redis: ten times in a row, with live
streams open and background runs going, each stop ends every process it started within 10 s;
the streams are told when to reconnect; background runs past the grace period are cancelled
(their viewers told). The stop times are printed (``pytest -s``)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from .process_group import group_alive, kill_group, stop_group
from .test_run import free_port, wait_until_up

REDIS_URL = "redis://127.0.0.1:6379/0"
STOPS = 10
BOUND = 10.0  # seconds, per stop
GRACE = 2.0  # STARMODEL_SHUTDOWN_GRACE of the server under test

APP = textwrap.dedent('''
    import asyncio

    from starmodel import Entity, StarModel, StateStore, event

    class Hits(Entity):
        model_config = {"store": StateStore.SERVER_REDIS, "scope": "global"}
        count: int = 0

        @event
        def add(self):
            self.count += 1

    class Chore(Entity):
        """A session's long background run: a step every 0.2 s for a minute."""
        step: int = 0

        @event(background=True)
        async def run(self):
            for n in range(300):
                await asyncio.sleep(0.2)
                self.step = n + 1
                yield None

    sm = StarModel(entities=[Hits, Chore])
    app = sm.app
''')


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"smstop{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def start(tmp_path: Path, port: int, prefix: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SECRET_KEY": "stop-test", "STARMODEL_ASSETS": "cdn", "REDIS_URL": REDIS_URL,
           "STARMODEL_REDIS_PREFIX": prefix, "STARMODEL_SHUTDOWN_GRACE": str(GRACE)}
    return subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", str(port), "--workers", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def test_a_two_worker_server_stops_cleanly_ten_times_in_a_row(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    times: list[float] = []
    headers = {"Datastar-Request": "true"}
    for round_no in range(STOPS):
        port = free_port()
        proc = start(tmp_path, port, prefix)
        tabs: list[httpx.Client] = []
        try:
            wait_until_up(port, proc, timeout=60)
            base = f"http://127.0.0.1:{port}"
            streams = []
            for _ in range(4):  # a connection each: the kernel spreads them over both workers
                tab = httpx.Client(base_url=base, timeout=30)
                tabs.append(tab)
                tab.get("/")
                assert tab.post("/chore/run", headers={**headers, "Origin": base}, json={}).status_code < 300
                opened = tab.stream("GET", "/_starmodel/live", headers=headers)
                live = opened.__enter__()
                chunks = live.iter_text()
                assert next(chunks)  # open, with its catch-up
                streams.append((opened, chunks))
            assert tabs[0].post("/hits/add", headers={**headers, "Origin": base}, json={}).status_code == 200
            time.sleep(0.5)  # the background runs are a few steps in
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            endings = ["".join(chunks) for _, chunks in streams]  # each ends when its worker says so
            out = stop_group(proc, timeout=BOUND + 5, signalled=True)
            took = time.monotonic() - started
        finally:
            for tab in tabs:
                tab.close()
            kill_group(proc)
        times.append(took)
        print(f"stop {round_no + 1}: {took:.2f} s")
        assert took < BOUND, f"stop {round_no + 1} took {took:.2f}s\n{out[-3000:]}"
        assert proc.returncode == 0, out[-3000:]
        assert not group_alive(proc)
        for ending in endings:  # every stream was told when to come back, within the spread
            hint = re.search(r"^retry: (\d+)$", ending, re.M)
            assert hint is not None and 500 <= int(hint.group(1)) <= 2500, ending[-500:]
        assert "background run(s) still going" in out and "cancelled" in out
        assert "Traceback" not in out and "killed" not in out, out[-3000:]
    print("stop times (s):", ", ".join(f"{t:.2f}" for t in times), f"max {max(times):.2f}")


STUCK_APP = textwrap.dedent('''
    import time

    from starmodel import Entity, StarModel, event

    class Hits(Entity):
        count: int = 0

        @event
        def add(self):
            self.count += 1

    sm = StarModel(entities=[Hits])
    app = sm.app

    async def stuck():
        time.sleep(120)  # blocks the worker's only thread: nothing in it can end this

    sm.shutdown_hooks.insert(0, stuck)

    @app.route("/pid")
    def pid():
        import os
        return str(os.getpid())
''')


def test_a_worker_that_never_stops_is_killed_and_named(tmp_path: Path) -> None:
    """The supervisor does not wait for ever (uvicorn's did): a worker still running after
    the grace period plus its margins is killed, the log says which, the exit code is 1."""
    (tmp_path / "app.py").write_text(STUCK_APP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(SECRET_KEY="stop-test", STARMODEL_ASSETS="cdn", STARMODEL_SHUTDOWN_GRACE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", str(port), "--workers", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        wait_until_up(port, proc, timeout=60)
        pids: set[str] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2:  # both workers serve (a new connection each time)
            assert time.monotonic() < deadline, pids
            pids.add(httpx.get(f"http://127.0.0.1:{port}/pid", timeout=10).text)
        started = time.monotonic()
        out = stop_group(proc, timeout=30)
        took = time.monotonic() - started
    finally:
        kill_group(proc)
    print(f"stuck workers killed after {took:.2f} s")
    assert proc.returncode == 1, out[-2000:]
    assert len(re.findall(r"Child process \[\d+\] killed \(not stopped after 8 s\)", out)) == 2, out[-2000:]
    assert 8 <= took < 15, took

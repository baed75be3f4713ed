"""`starmodel run` with Redis: checks at start, and real time across `--workers`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from .process_group import stop_group
from .test_run import ROOT, free_port, wait_until_up

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1

APP = textwrap.dedent('''
    from starmodel import Entity, StarModel, StateStore, event

    class Visits(Entity):
        model_config = {"store": StateStore.SERVER_REDIS, "scope": "global"}
        count: int = 0

        @event
        def add(self):
            self.count += 1

    sm = StarModel(entities=[Visits])
    app = sm.app
''')

MEMORY_APP = textwrap.dedent('''
    from starmodel import Entity, StarModel, event

    class Clicks(Entity):
        model_config = {"scope": "global", "per_process": True}
        count: int = 0

        @event
        def add(self):
            self.count += 1

    sm = StarModel(entities=[Clicks])
    app = sm.app
''')


def run(tmp_path: Path, source: str, *args: str, **env: str) -> subprocess.Popen[str]:
    (tmp_path / "app.py").write_text(source)
    full_env = {**os.environ, "SECRET_KEY": "cli-test", "STARMODEL_ASSETS": "cdn", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", *args],
        cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"smcli{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def stop(proc: subprocess.Popen[str]) -> str:
    return stop_group(proc, timeout=15)


def test_redis_entities_and_redis_down_is_one_line_and_no_server(tmp_path: Path) -> None:
    proc = run(tmp_path, APP, "--port", str(free_port()), REDIS_URL=DEAD_REDIS)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "Redis at 127.0.0.1:1 cannot be reached" in out and "Visits live there" in out
    assert "Traceback" not in out


def test_a_bad_redis_url_is_one_line(tmp_path: Path) -> None:
    proc = run(tmp_path, APP, "--port", str(free_port()), REDIS_URL="http://127.0.0.1:6379")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "is not a Redis URL" in out and "Traceback" not in out


def test_redis_only_for_the_bus_and_down_warns_and_serves_in_process(tmp_path: Path) -> None:
    port = free_port()
    proc = run(tmp_path, MEMORY_APP, "--port", str(port), "--no-reload", REDIS_URL=DEAD_REDIS)
    try:
        wait_until_up(port, proc)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as tab, httpx.Client(base_url=base, timeout=10) as other:
            tab.get("/")
            headers = {"Datastar-Request": "true"}
            with tab.stream("GET", "/_starmodel/live", headers=headers) as live:
                chunks = live.iter_text()
                next(chunks)  # the initial state
                answer = other.post("/clicks/add", headers={**headers, "Origin": base}, json={})
                assert answer.status_code == 200
                received = ""
                while '"count":1' not in received:
                    received += next(chunks)
    finally:
        out = stop(proc)
    assert "warning: Redis at 127.0.0.1:1 cannot be reached" in out
    assert "Traceback" not in out


def test_workers_share_real_time_through_redis(prefix: str) -> None:
    """Two workers behind one port: every change reaches a live stream held by either one
    (the demo keeps its shared counter in Redis when REDIS_URL is set)."""
    port = free_port()
    env = {**os.environ, "SECRET_KEY": "cli-test", "STARMODEL_ASSETS": "cdn", "REDIS_URL": REDIS_URL,
           "STARMODEL_REDIS_PREFIX": prefix, "DATABASE_URL": "sqlite:///:memory:"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "demo", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        wait_until_up(port, proc, timeout=40)
        base = f"http://127.0.0.1:{port}"
        headers = {"Datastar-Request": "true"}
        with httpx.Client(base_url=base, timeout=10) as tab:
            tab.get("/")
            with tab.stream("GET", "/_starmodel/live", headers=headers) as live:
                chunks = live.iter_text()
                next(chunks)
                for _ in range(20):  # a new connection each time: the kernel spreads them
                    with httpx.Client(base_url=base, timeout=10) as clicker:
                        answer = clicker.post("/shared_counter/increment",
                                              headers={**headers, "Origin": base}, json={})
                        assert answer.status_code == 200
                received = ""
                while '"shared_counter":{"count":20}' not in received:
                    received += next(chunks)
        for n in range(1, 21):  # every change, whichever worker made it
            assert f'"shared_counter":{{"count":{n}}}' in received
    finally:
        out = stop(proc)
    assert "Traceback" not in out

"""No silent divergence across processes: a global memory entity is kept in Redis when
REDIS_URL is set (two `starmodel run` processes show one counter), and `--workers 2` without
Redis refuses to start, naming the entity and the fix."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
import redis

from .process_group import kill_group, stop_group
from .test_run import free_port, wait_until_up

REDIS_URL = "redis://127.0.0.1:6379/0"
APP = textwrap.dedent('''
    from fasthtml.common import Div

    from starmodel import Entity, StarModel, event

    class Clicks(Entity):
        model_config = {"scope": "global"}
        count: int = 0

        @event
        def add(self):
            self.count += 1

    class Mine(Entity):
        count: int = 0

    sm = StarModel(entities=[Clicks, Mine])
    app = sm.app

    @app.route("/")
    async def index(request):
        return Div(await sm.load(Clicks), id="page")
''')


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"smglobal{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    (tmp_path / "app.py").write_text(APP)
    full_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    full_env.update({"SECRET_KEY": "global-test", "STARMODEL_ASSETS": "cdn", **env})
    return subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", *args],
        cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def shown_count(page: str) -> int:
    """The count the page's signals carry (``data-signals`` of the rendered entity)."""
    found = re.search(r"data-signals=\"([^\"]*)\"", page)
    assert found is not None, page
    return int(json.loads(unescape(found.group(1)))["clicks"]["count"])


def test_two_processes_with_redis_share_a_global_memory_entity(tmp_path: Path, prefix: str) -> None:
    env = {"REDIS_URL": REDIS_URL, "STARMODEL_REDIS_PREFIX": prefix}
    port_a, port_b = free_port(), free_port()
    a = start(tmp_path, "--port", str(port_a), **env)
    b = start(tmp_path, "--port", str(port_b), **env)
    try:
        wait_until_up(port_a, a, timeout=40)
        wait_until_up(port_b, b, timeout=40)
        on_a, on_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        headers = {"Datastar-Request": "true"}
        with httpx.Client(timeout=10) as browser:
            for _ in range(3):
                clicked = browser.post(f"{on_a}/clicks/add", headers={**headers, "Origin": on_a}, json={})
                assert clicked.status_code == 200
            assert shown_count(browser.get(f"{on_b}/").text) == 3  # B shows A's clicks
            with browser.stream("GET", f"{on_a}/_starmodel/live", headers=headers) as live:
                chunks = live.iter_text()
                next(chunks)
                clicked = browser.post(f"{on_b}/clicks/add", headers={**headers, "Origin": on_b}, json={})
                assert '"count":4' in clicked.text  # one click on B: 4, not 1
                seen = ""
                while '"clicks":{"count":4}' not in seen:
                    seen += next(chunks)
            assert shown_count(browser.get(f"{on_a}/").text) == 4
        stored = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            assert json.loads(stored.hget(f"{prefix}:clicks:global", "d") or "{}") == {"count": 4}
        finally:
            stored.close()
    finally:
        out_a, out_b = stop_group(a), stop_group(b)
    assert "Traceback" not in out_a + out_b


def test_workers_without_redis_refuse_a_global_memory_entity_in_one_line(tmp_path: Path) -> None:
    proc = start(tmp_path, "--port", str(free_port()), "--workers", "2")
    try:
        out, _ = proc.communicate(timeout=40)
    finally:
        kill_group(proc)
    assert proc.returncode == 1
    error = [line for line in out.splitlines() if line.startswith("Error:")]
    assert error == [
        "Error: Clicks: global memory entities would have one copy per worker; set REDIS_URL "
        "(they are then kept in Redis), or run one worker (or mark them "
        "model_config['per_process'] = True if each worker should have its own)"
    ], out
    assert "Traceback" not in out and "Mine" not in error[0]

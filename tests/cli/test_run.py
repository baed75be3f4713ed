"""`starmodel run` as a real subprocess, talked to over a real socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .process_group import kill_group

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SECRET_KEY": "cli-test", "STARMODEL_ASSETS": "cdn"}
    return subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # a test that fails mid-way kills all it started
    )


def wait_until_up(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


@pytest.fixture
def demo_server() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = start("demo", "--port", str(port), "--no-reload")
    try:
        wait_until_up(port, proc)
        yield port, proc
    finally:
        kill_group(proc)


def test_run_serves_demo_events_over_a_socket(demo_server) -> None:
    port, _ = demo_server
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=5.0) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="starmodel-live"' in page.text and "@post('/counter/increment')" in page.text
        headers = {"Datastar-Request": "true"}
        first = client.post("/counter/increment?amount=2", headers=headers, json={})
        second = client.post("/counter/increment", headers=headers, json={})
        assert first.status_code == second.status_code == 200
        assert '"count":2' in first.text and '"count":3' in second.text
        assert client.post("/counter/increment", json={}).status_code == 403


def test_sigterm_with_open_live_stream_stops_promptly(demo_server) -> None:
    port, proc = demo_server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
        client.get("/")
        with client.stream("GET", "/_starmodel/live", headers={"Datastar-Request": "true"}) as live:
            chunks = live.iter_text()
            assert next(chunks)  # the stream is open and sent its catch-up
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rest = "".join(chunks)  # ends when the server closes the stream
            assert rest is not None
        proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    # uvicorn re-raises the stop signal after a clean shutdown
    assert proc.returncode in (0, -signal.SIGTERM)
    assert elapsed < 3.0, f"shutdown took {elapsed:.1f}s with a live stream open"


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start("demo", "--port", str(port))
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"port {port} is already in use" in out
    assert "Traceback" not in out


def test_unknown_app_is_one_clear_line() -> None:
    proc = start("no_such_app_module", "--port", str(free_port()))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert out.strip() == "Error: no app found: there is no module 'no_such_app_module'"

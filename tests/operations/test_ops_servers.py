"""`starmodel run --server uvicorn|granian`: events, live streams, `--workers 2` (with metrics
summed over the workers) and a prompt stop with streams open, on both servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

SERVERS = ["uvicorn", "granian"]
DATASTAR = {"Datastar-Request": "true"}

APP = textwrap.dedent('''
    import os

    from starlette.responses import JSONResponse

    from starmodel import Entity, StarModel, event

    class Beat(Entity):
        model_config = {"namespace": "beat", "scope": "global", "per_process": True}  # a count per worker
        count: int = 0

        @event
        def add(self):
            self.count += 1

    sm = StarModel(entities=[Beat])
    app = sm.app

    @app.route("/worker")
    def worker():
        return JSONResponse({"pid": os.getpid(), "folder": os.environ.get("PROMETHEUS_MULTIPROC_DIR")})
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A `starmodel run` of the app above in its own process group (killed whatever happens)."""

    def __init__(self, folder: Path, server: str, *args: str, **env: str) -> None:
        (folder / "app.py").write_text(APP)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "SECRET_KEY": "ops-servers", "STARMODEL_ASSETS": "cdn", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", str(self.port),
             "--server", server, *args],
            cwd=folder, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )

    def wait_until_up(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                httpx.get(f"{self.base}/worker", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("server did not come up")

    def stop(self) -> float:
        """SIGTERM; the seconds until the process has exited."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout and self.proc.poll() is not None else ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    def make(server: str, *args: str, **env: str) -> Server:
        running = Server(tmp_path, server, *args, **env)
        started.append(running)
        running.wait_until_up()
        return running

    yield make  # type: ignore[misc]
    for running in started:
        running.kill()


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


@pytest.mark.parametrize("server", SERVERS)
def test_events_and_a_live_stream_then_a_prompt_stop(serve, server: str) -> None:
    running = serve(server, "--no-reload")
    with (
        httpx.Client(base_url=running.base, timeout=10) as tab,
        httpx.Client(base_url=running.base) as other,
        tab.stream("GET", "/_starmodel/live", headers=DATASTAR) as live,
    ):
        chunks = live.iter_text()
        assert "datastar-patch-signals" in next(chunks)  # the tab's state
        answer = other.post("/beat/add", headers=DATASTAR)
        assert answer.status_code == 200 and '"count":1' in answer.text
        assert answer.headers["x-request-id"]
        received = ""
        while '"beat":{"count":1}' not in received:
            received += next(chunks)
        took = running.stop()  # with the stream still open
        assert "".join(chunks) is not None  # the server ended it
    assert took < 3.0, f"{server} took {took:.1f}s to stop with a live stream open"
    out = running.output()
    assert "Traceback" not in out and running.proc.returncode in (0, -signal.SIGTERM)


@pytest.mark.parametrize("server", SERVERS)
def test_two_workers_sum_their_metrics_and_stop(serve, server: str) -> None:
    running = serve(server, "--workers", "2", STARMODEL_METRICS="1")
    events: dict[int, int] = {}
    folder = None
    for _ in range(400):  # a new connection each time: the kernel spreads them over the workers
        with httpx.Client(base_url=running.base, timeout=10) as browser:
            worker = browser.get("/worker").json()
            folder = worker["folder"]
            assert browser.post("/beat/add", headers=DATASTAR).status_code == 200
            events[worker["pid"]] = events.get(worker["pid"], 0) + 1
        if len(events) == 2 and sum(events.values()) >= 10:
            break
    assert len(events) == 2, f"every request went to one worker: {events}"
    assert folder and Path(folder).is_dir()
    sent = sum(events.values())
    # any worker answers with the figures of both; and counts the live streams both hold
    seen: set[int] = set()
    streams: list[tuple[httpx.Client, object, Iterator[str]]] = []
    try:
        while len(seen) < 2:
            browser = httpx.Client(base_url=running.base, timeout=10)
            pid = browser.get("/worker").json()["pid"]
            if pid in seen:
                browser.close()
                continue
            seen.add(pid)
            text = browser.get("/_starmodel/metrics").text  # the same connection: that worker
            assert metric(text, "starmodel_events_total", entity="Beat", event="add", status="ok") == sent
            assert metric(text, "starmodel_event_duration_seconds_count", entity="Beat", event="add") == sent
            live = browser.stream("GET", "/_starmodel/live", headers=DATASTAR)
            response = live.__enter__()
            assert response.status_code == 200
            chunks = response.iter_text()  # kept: dropping it would close the stream
            next(chunks)
            streams.append((browser, live, chunks))
        # each worker writes its count every second: both streams show within a few
        for _ in range(50):
            with httpx.Client(base_url=running.base, timeout=10) as scraper:
                live_streams = metric(scraper.get("/_starmodel/metrics").text, "starmodel_live_streams")
            if live_streams == 2:
                break
            time.sleep(0.1)
        assert live_streams == 2
        took = running.stop()
    finally:
        for browser, live, _ in streams:
            with contextlib.suppress(httpx.HTTPError):
                live.__exit__(None, None, None)  # type: ignore[attr-defined]
            browser.close()
    assert took < 10.0, f"{server} took {took:.1f}s to stop two workers"
    assert not Path(folder).exists(), "the metrics folder of the workers was left behind"
    assert "Traceback" not in running.output()


def test_granian_with_reload_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--server", "granian", "--reload"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SECRET_KEY": "x", "STARMODEL_ASSETS": "cdn"},
    )
    assert done.returncode == 1 and done.stderr.strip() == "Error: --reload needs --server uvicorn"


def test_granian_missing_names_the_extra(tmp_path: Path) -> None:
    """Without granian installed (a stand-in package that fails to import, first on the path),
    the server choice is one line that names the extra to install."""
    fake = tmp_path / "shadow" / "granian"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('granian is not installed here')\n")
    (tmp_path / "app.py").write_text(APP)
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--server", "granian",
         "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SECRET_KEY": "x", "STARMODEL_ASSETS": "cdn", "PYTHONPATH": path},
    )
    assert done.returncode == 1
    assert "Error: --server granian needs granian: pip install 'starmodel[granian]'" in done.stderr
    assert "Traceback" not in done.stderr

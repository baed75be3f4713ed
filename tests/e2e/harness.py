"""Helpers of the e2e tests: the demo server subprocess and small browser utilities."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# Settings the server reads from the environment; a developer's shell must not leak in.
SERVER_SETTINGS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "STARMODEL_ASSETS",
    "STARMODEL_ASSETS_DIR",
    "STARMODEL_THEME",
    "STARMODEL_DEBUG",
    "STARMODEL_ALLOWED_ORIGINS",
    "STARMODEL_APP",
    "STARMODEL_SESSION_MAX_AGE",
    "STARMODEL_TRUSTED_PROXIES",
    "STARMODEL_CSP",
    "STARMODEL_CSP_REPORT_ONLY",
    "STARMODEL_HSTS_MAX_AGE",
    "STARMODEL_LOG_FORMAT",
    "STARMODEL_METRICS",
    "STARMODEL_METRICS_TOKEN",
    "STARMODEL_TRACING",
    "PROMETHEUS_MULTIPROC_DIR",
    "STARMODEL_SHUTDOWN_GRACE",
    "STARMODEL_PRESENCE_TTL",
    "STARMODEL_PRESENCE_BEAT",
    "DEMO_ADMIN_PASSWORD",
)
ACTION_TIMEOUT_MS = 10_000
EXPECT_TIMEOUT_MS = 10_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


# --- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_HOST, 0))
        return int(probe.getsockname()[1])


def starmodel_command() -> str:
    """The ``starmodel`` console script of this interpreter (or the one on PATH)."""
    beside = Path(sys.executable).parent / "starmodel"
    found = str(beside) if beside.is_file() else shutil.which("starmodel")
    if not found:
        pytest.fail("the `starmodel` command is missing; install the package (pip install -e .)")
    return found


def answers(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class DemoServer:
    """A ``starmodel run demo`` subprocess and its captured output."""

    port: int
    assets_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    def server_env(self) -> dict[str, str]:
        """The server's environment: the shell's, minus StarModel settings, plus the test's."""
        env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
        env.update(
            STARMODEL_ASSETS="local",
            STARMODEL_ASSETS_DIR=str(self.assets_dir),
            SECRET_KEY="e2e-secret",
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self) -> list[str]:
        return [starmodel_command(), "run", "demo", "--port", str(self.port), "--no-reload"]

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.killed = False
        self._log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.server_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.wait_answering()

    def wait_answering(self) -> None:
        """Until the port answers; fails the test (showing the log) if the process exits or
        takes longer than ``START_TIMEOUT``."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                pytest.fail(
                    f"the demo server exited with code {self.proc.returncode} before answering "
                    f"on port {self.port}; its output:\n{self.log()}"
                )
            if answers(self.port):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"the demo server did not answer on port {self.port} within {START_TIMEOUT}s; "
            f"its output:\n{self.log()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        self._close_log()
        return proc.returncode

    def stopped_cleanly(self) -> bool:
        """Exited on SIGTERM without being killed, after uvicorn's orderly shutdown.

        (Uvicorn re-raises the signal once it has shut down, so the code is 0 or -SIGTERM.)
        """
        return (
            self.proc is not None
            and not self.killed
            and self.proc.returncode in (0, -signal.SIGTERM)
            and "Finished server process" in self.log()
        )

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# --- the browser ---------------------------------------------------------------------


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == LOCAL_HOST


def asset_name(url: str) -> str:
    """``.../_starmodel/assets/franken-ui/core.min.<hash>.css`` -> ``franken-ui/core.min.css``."""
    served = url.split("/_starmodel/assets/")[-1].split("?")[0]
    return re.sub(r"\.[0-9a-f]{10}(\.[a-z]+)$", r"\1", served)


@dataclass
class ExternalRequests:
    """Requests that tried to leave 127.0.0.1 (all aborted)."""

    urls: list[str] = field(default_factory=list)


LAB = "/lab"
"""The demo's page with every widget on it (each also has a page of its own)."""


def open_demo(context: BrowserContext, base_url: str, path: str = LAB) -> Page:
    """A new tab on the demo's lab page, once Datastar has applied the page's signals."""
    page = context.new_page()
    page.goto(base_url + path)
    # data-text is empty in the HTML: a number here means Datastar is running.
    expect(page.locator("#counter-value")).to_have_text(re.compile(r"^-?\d+$"))
    expect(page.locator("#shared-value")).to_have_text(re.compile(r"^-?\d+$"))
    return page


# --- a TCP proxy that can cut connections -------------------------------------------------


class CuttableProxy:
    """Forwards ``127.0.0.1:<port>`` to a server, and can drop every open connection.

    A tab loaded through the proxy keeps its live stream on a proxied connection, so
    ``cut()`` kills that stream the way a network blip would; while ``refusing`` new
    connections are closed at once, so the tab's retries fail until ``resume()``.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server((LOCAL_HOST, 0))
        self.port = int(self.listener.getsockname()[1])
        self.refusing = False
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="e2e-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection((LOCAL_HOST, self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _hard_close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._forget(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _hard_close(sock)

    def cut(self) -> int:
        """Drop every open connection (with a reset); returns how many there were."""
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            _hard_close(sock)
        self.cuts += 1
        return len(victims)

    def pause(self) -> None:
        self.refusing = True

    def resume(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


def _hard_close(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network path looks to the browser."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# --- demo servers with settings of their own (Redis, a shared database) -------------------

# The real Redis the multi-process tests share (``STARMODEL_E2E_REDIS_URL`` points them at
# another one, e.g. to run them beside tests that stop and start the default one).
REDIS_URL = os.environ.get("STARMODEL_E2E_REDIS_URL") or "redis://127.0.0.1:6379/0"


@dataclass
class ConfiguredDemoServer(DemoServer):
    """``python -m starmodel.cli.main run demo`` with extra settings in ``env`` (e.g.
    ``REDIS_URL``, ``DATABASE_URL``), so several of them can share a Redis and a database.

    ``start`` may be called again after ``stop``: same port, same log (appended to).
    """

    env: dict[str, str] = field(default_factory=dict)

    def server_env(self) -> dict[str, str]:
        return {**super().server_env(), **self.env}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "starmodel.cli.main", "run", "demo", "--port", str(self.port),
                "--no-reload"]


def drop_redis_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every key under ``<prefix>:``; returns how many there were."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()

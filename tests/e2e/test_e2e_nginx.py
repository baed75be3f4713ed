"""The deployment of ``docs/deploy.md``, run: nginx with ``deploy/nginx/starmodel.conf`` (TLS
with a certificate made here, ports swapped) in front of two ``starmodel run`` processes that
share a PostgreSQL database of this test's own and the machine's Redis (a key prefix of this
test's own), driven by Chromium through nginx.

Two browsers whose live streams land on different processes see each other's changes. Then
a rolling restart with both tabs open: process 1 is stopped (SIGTERM) and started again, then
process 2. The tabs reconnect through nginx each time, catch up on what changed while they
were away, and lose nothing: every counter click and every note committed is there, in the
database and on both pages, and a note half typed in a form is still in its box; no error
page, no error toast.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

from .harness import REDIS_URL, REPO, drop_redis_prefix, free_port, is_local

pytestmark = pytest.mark.e2e

SITE = REPO / "deploy" / "nginx" / "starmodel.conf"
APP = Path(__file__).resolve().with_name("deploy_app.py")
NGINX = "/usr/sbin/nginx"
PG = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc"]
STOP_BOUND = 10.0  # seconds a process may take to stop cleanly
RECONNECT_MS = 15_000


# --- the processes ------------------------------------------------------------------------


@dataclass
class AppProcess:
    """One ``starmodel run deploy_app.py`` process on its own port."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stop_times: list[float] = field(default_factory=list)

    def start(self) -> None:
        command = [sys.executable, "-m", "starmodel.cli.main", "run", str(APP), "--port", str(self.port),
                   "--no-reload", "--log-level", "warning"]
        with self.log_path.open("ab") as log:
            env = {**self.env, "DEPLOY_PROCESS": self.name}
            self.proc = subprocess.Popen(command, cwd=APP.parent, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 40.0) -> None:
        """Until its readiness check answers 200 (PostgreSQL, Redis and the bus answer)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited at start:\n{self.log()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/_starmodel/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, as a rolling restart does; it must end within ``STOP_BOUND``."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {STOP_BOUND}s:\n{self.log()}") from None
        self.stop_times.append(time.monotonic() - started)
        assert code in (0, -signal.SIGTERM), f"{self.name} exited with {code}:\n{self.log()}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --- nginx --------------------------------------------------------------------------------


def site_config(https_port: int, http_port: int, upstreams: list[int], cert: Path, key: Path) -> str:
    """``deploy/nginx/starmodel.conf`` with this test's ports and certificate (each swapped
    value must be in the file exactly once: the file and this test cannot drift apart)."""
    text = SITE.read_text()
    swaps = {
        "server 127.0.0.1:8001 ": f"server 127.0.0.1:{upstreams[0]} ",
        "server 127.0.0.1:8002 ": f"server 127.0.0.1:{upstreams[1]} ",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/certs/example.com.pem": str(cert),
        "/etc/ssl/private/example.com.key": str(key),
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"{SITE} should hold {old!r} once"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """nginx in the foreground, with its own prefix, temp folders, logs and pid file."""

    folder: Path
    site: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        (self.folder / "site.conf").write_text(self.site)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        f = self.folder
        (f / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {f}/nginx.pid;\n"
            f"error_log {f}/logs/error.log info;\n"
            "events { worker_connections 512; }\n"
            f"http {{\n  access_log {f}/logs/access.log;\n  client_body_temp_path {f}/client_body;\n"
            f"  proxy_temp_path {f}/proxy;\n  fastcgi_temp_path {f}/fastcgi;\n  uwsgi_temp_path {f}/uwsgi;\n"
            f"  scgi_temp_path {f}/scgi;\n  include {f}/site.conf;\n}}\n"
        )
        check = subprocess.run([NGINX, "-t", "-p", str(f), "-c", str(f / "nginx.conf"), "-e", "stderr"],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", str(f), "-c", str(f / "nginx.conf"), "-e", "stderr"],
                                     stdout=subprocess.DEVNULL, stderr=(f / "logs" / "stderr.log").open("ab"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"https://127.0.0.1:{port}/favicon.ico", verify=False, timeout=1)
                return
            time.sleep(0.1)
        raise AssertionError(f"nginx did not answer:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: open streams end
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted((self.folder / "logs").glob("*.log")))


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    name = f"sm_deploy_{secrets.token_hex(4)}"
    subprocess.run([*PG, f'CREATE DATABASE "{name}"', "postgres"], check=True, capture_output=True,
                   timeout=30)
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run([*PG, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', "postgres"],
                       capture_output=True, timeout=30)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"e2edeploy{secrets.token_hex(4)}"
    yield prefix
    drop_redis_prefix(prefix)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture
def deployment(
    tmp_path: Path, database: str, redis_prefix: str, certificate: tuple[Path, Path], assets_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, list[AppProcess], Nginx, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARMODEL_")
           and k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")}
    env.update(SECRET_KEY=f"deploy-{secrets.token_hex(8)}", DATABASE_URL=database, REDIS_URL=REDIS_URL,
               STARMODEL_REDIS_PREFIX=redis_prefix, STARMODEL_ASSETS_DIR=str(assets_dir),
               STARMODEL_MIGRATIONS_DIR=str(tmp_path / "no-migrations"), STARMODEL_SHUTDOWN_GRACE="2",
               STARMODEL_TRUSTED_PROXIES="127.0.0.1",  # nginx: its X-Forwarded-Proto (https) is believed
               PYTHONUNBUFFERED="1")
    processes = [AppProcess(f"p{n}", free_port(), env, tmp_path / f"p{n}.log") for n in (1, 2)]
    https_port, http_port = free_port(), free_port()
    site = site_config(https_port, http_port, [p.port for p in processes], *certificate)
    nginx = Nginx(tmp_path / "nginx", site)
    try:
        for process in processes:  # one after the other: the first creates the table
            process.start()
            process.wait_ready()
        nginx.start(https_port)
        yield f"https://127.0.0.1:{https_port}", processes, nginx, http_port
    finally:
        nginx.stop()
        for process in processes:
            process.kill()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for process in processes:
                print(f"--- {process.name} ---\n{process.log()}")
            print(f"--- nginx ---\n{nginx.log()}")
    for process in processes:
        assert "Traceback" not in process.log(), process.log()


# --- the browser --------------------------------------------------------------------------


@dataclass
class Tab:
    """A tab, and which process each of its live streams was answered by."""

    page: Page
    streams: list[str] = field(default_factory=list)

    @property
    def on(self) -> str:
        return self.streams[-1]


def open_tab(browser: Browser, url: str, contexts: list[BrowserContext]) -> Tab:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 800})
    context.route(lambda target: not is_local(target), lambda route: route.abort("internetdisconnected"))
    contexts.append(context)
    page = context.new_page()
    tab = Tab(page)

    def seen(response: Response) -> None:
        if response.url.split("?")[0].endswith("/_starmodel/live") and response.status == 200:
            tab.streams.append(response.headers.get("x-served-by", "?"))

    page.on("response", seen)
    page.goto(url + "/")
    expect(page.locator("#count")).to_have_text(re.compile(r"^\d+$"))
    wait_until(page, lambda: bool(tab.streams), "the live stream opens")
    page.evaluate("window.__sameDocument = true")  # gone if the tab ever reloads or navigates
    return tab


def wait_until(page: Page, condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``condition`` while Playwright delivers the page's events (a plain sleep would not)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        page.wait_for_timeout(50)


def bump(tab: Tab) -> None:
    tab.page.click("#bump")


def add_note(tab: Tab, text: str) -> None:
    tab.page.fill("#note-new", text)
    tab.page.click("#note-add")
    expect(tab.page.locator("#note-new")).to_have_value("")  # the answer emptied the box


def shows(tab: Tab, count: int, notes: list[str]) -> None:
    expect(tab.page.locator("#count")).to_have_text(str(count), timeout=RECONNECT_MS)
    expect(tab.page.locator("#notes li.note")).to_have_text(notes, timeout=RECONNECT_MS)


def intact(tab: Tab) -> None:
    """Never an error page, a reload, or an error toast."""
    assert tab.page.evaluate("window.__sameDocument === true")
    expect(tab.page.locator("#page")).to_be_visible()
    expect(tab.page.locator("#starmodel-toasts [data-variant=error]")).to_have_count(0)


def reopened(tab: Tab, before: int) -> None:
    """The tab's live stream was opened again (through nginx) since ``before`` streams."""
    wait_until(tab.page, lambda: len(tab.streams) > before, "the tab reconnects")


def test_two_processes_behind_nginx_share_everything_and_survive_a_rolling_restart(
    deployment: tuple[str, list[AppProcess], Nginx, int], browser: Browser, database: str
) -> None:
    url, (p1, p2), nginx, http_port = deployment
    redirect = httpx.get(f"http://127.0.0.1:{http_port}/anything", follow_redirects=False)
    assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://")
    ready = httpx.get(f"{url}/_starmodel/ready", verify=False)
    assert ready.status_code == 200
    assert ready.json()["services"] == {"database": "ok", "redis": "ok", "bus": "ok"}

    contexts: list[BrowserContext] = []
    try:
        alice = open_tab(browser, url, contexts)
        bob = open_tab(browser, url, contexts)
        for attempt in range(6):  # round robin: a new tab's stream lands on the other process soon
            if bob.on != alice.on:
                break
            bob.page.close()
            if attempt % 2 == 0:  # a tab makes a fixed number of requests: shift the turn by one
                httpx.get(f"{url}/_starmodel/health", verify=False)
            bob = open_tab(browser, url, contexts)
        assert {alice.on, bob.on} == {"p1", "p2"}, (alice.streams, bob.streams)

        # live streams on different processes: each sees the other's changes
        bump(alice)
        shows(bob, 1, [])
        add_note(bob, "from bob")
        shows(alice, 1, ["from bob"])
        alice.page.fill("#note-new", "half typed")  # typed in alice's form, never sent

        count, notes = 1, ["from bob"]
        for stopping, staying in ((p1, p2), (p2, p1)):
            away = [tab for tab in (alice, bob) if tab.on == stopping.name]
            assert away, (alice.streams, bob.streams)
            before = [len(tab.streams) for tab in away]
            stopping.stop()  # its streams end with a retry hint; their tabs reconnect elsewhere
            # changes made while those tabs are away (or on their way back), from bob's tab
            bump(bob)
            add_note(bob, f"while {stopping.name} was away")
            count += 1
            notes.append(f"while {stopping.name} was away")
            for tab, streams in zip(away, before, strict=True):
                reopened(tab, streams)
                assert tab.on == staying.name, tab.streams
            for tab in (alice, bob):
                shows(tab, count, notes)  # caught up
            stopping.start()
            stopping.wait_ready()
            bump(alice)  # and they go on working
            count += 1
            for tab in (alice, bob):
                shows(tab, count, notes)

        for tab in (alice, bob):
            intact(tab)
        expect(alice.page.locator("#note-new")).to_have_value("half typed")
        add_note(alice, "after the restart")
        notes.append("after the restart")
        for tab in (alice, bob):
            shows(tab, count, notes)
    finally:
        for context in contexts:
            with contextlib.suppress(Exception):
                context.close()

    stored = subprocess.run([*PG, "SELECT text FROM note ORDER BY id", database.rsplit("/", 1)[-1]],
                            check=True, capture_output=True, text=True, timeout=30).stdout.split("\n")
    assert [line for line in stored if line] == notes
    times = p1.stop_times + p2.stop_times
    print(f"\nrolling restart: stop times {', '.join(f'{t:.2f}s' for t in times)}")
    assert not re.search(r"\[(emerg|alert|crit)\]", nginx.log()), nginx.log()

"""End-to-end fixtures: the demo app served by ``starmodel run`` in a real subprocess, driven by
the Debian Chromium through Playwright's sync API.

* ``demo_server`` (session): one server for the whole run; its stderr goes to a file, and every
  test fails if a ``Traceback`` shows up in it while the test runs.
* ``browser`` (session): one Chromium; ``new_context`` (function) gives fresh contexts, i.e.
  fresh sessions, whose requests may only go to 127.0.0.1: anything else is aborted and
  recorded in ``external_requests`` (asserted empty when the test ends).
* ``start_server``: starts an extra server (its own port), stopped when the test ends; tests
  that restart a server use it so the shared one is never disturbed.

Page assets come from ``$STARMODEL_ASSETS_DIR`` or ``<repo>/.assets`` (``starmodel assets``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)

from .harness import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    CuttableProxy,
    DemoServer,
    ExternalRequests,
    free_port,
    is_local,
    open_demo,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    configured = os.environ.get("STARMODEL_ASSETS_DIR")
    folder = Path(configured) if configured else REPO / ".assets"
    if not (folder / "datastar.js").is_file():
        pytest.fail(
            f"e2e tests need the Datastar client at {folder / 'datastar.js'}; fetch the page "
            f"assets first with `starmodel assets --dir {folder}` (or point "
            "STARMODEL_ASSETS_DIR at a folder that has them)",
            pytrace=False,
        )
    return folder.resolve()


@pytest.fixture(scope="session")
def demo_server(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = DemoServer(free_port(), assets_dir, tmp_path_factory.mktemp("server") / "demo.log")
    server.start()
    yield server
    code = server.stop()
    assert "Traceback" not in server.log(), f"server log has a traceback:\n{server.log()}"
    assert server.stopped_cleanly(), f"server exited with {code} on SIGTERM:\n{server.log()}"


@pytest.fixture
def start_server(
    assets_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], DemoServer]]:
    """Start extra demo servers (own port, own log); all are stopped when the test ends."""
    started: list[DemoServer] = []

    def start() -> DemoServer:
        server = DemoServer(free_port(), assets_dir, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
    report = getattr(request.node, "rep_call", None)
    for server in started:
        if report is not None and report.failed:
            print(f"--- log of the server on port {server.port} ---\n{server.log()}")
    for server in started:
        assert "Traceback" not in server.log(), f"server log has a traceback:\n{server.log()}"


@pytest.fixture
def proxy(demo_server: DemoServer) -> Iterator[CuttableProxy]:
    """A proxy to the shared server whose connections a test can cut."""
    proxy = CuttableProxy(demo_server.port)
    yield proxy
    proxy.close()


@pytest.fixture(autouse=True)
def _no_server_traceback(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every e2e test fails if the shared server logged a traceback while it ran."""
    if "demo_server" not in request.fixturenames:
        yield
        return
    server: DemoServer = request.getfixturevalue("demo_server")
    offset = server.log_size()
    yield
    written = server.log_since(offset)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log during {request.node.name} ---\n{written}")
    assert "Traceback" not in written, f"server logged a traceback during the test:\n{written}"


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"e2e tests drive {CHROMIUM} (Debian's chromium package); it is missing")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def external_requests() -> Iterator[ExternalRequests]:
    found = ExternalRequests()
    yield found
    assert not found.urls, f"the page tried to reach the network: {found.urls}"


@pytest.fixture
def new_context(
    browser: Browser, external_requests: ExternalRequests
) -> Iterator[Callable[[], BrowserContext]]:
    """Fresh browser contexts (each one is a new session); closed when the test ends."""
    contexts: list[BrowserContext] = []

    def record(req: Request) -> None:
        # Every request, routed or not (a worker's too), passes here first.
        if not is_local(req.url):
            external_requests.urls.append(req.url)

    def block(route: Route) -> None:
        route.abort("internetdisconnected")

    def make() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.route(lambda url: not is_local(url), block)
        context.on("request", record)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def demo(
    demo_server: DemoServer, new_context: Callable[[], BrowserContext]
) -> Callable[[BrowserContext | None], Page]:
    """``demo()`` opens the demo in a new context (new session); ``demo(ctx)`` a new tab."""

    def open_page(context: BrowserContext | None = None) -> Page:
        return open_demo(context or new_context(), demo_server.url)

    return open_page

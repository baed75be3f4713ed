"""A newcomer's first contact: the README's first command, exactly, in a fresh virtualenv on a
copy of this checkout (what a clone holds), with an empty asset cache; then the demo in
Chromium with every request that leaves 127.0.0.1 blocked: styled, live and working."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response, expect

from .harness import REPO, ExternalRequests, free_port

pytestmark = pytest.mark.e2e

README_COMMAND = re.compile(r"^(pip install -e \. && starmodel run demo)\s+#", re.M)
FIRST_200_TIMEOUT = 300.0  # the install included
# What a user's shell would not have: this test run's settings and interpreter.
DROPPED = ("PYTHONPATH", "VIRTUAL_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "XDG_CACHE_HOME")
BROWSER_DEFAULT_BUTTON = ("rgba(0, 0, 0, 0)", "rgb(239, 239, 239)", "rgb(240, 240, 240)")


def readme_first_command() -> str:
    found = README_COMMAND.search((REPO / "README.md").read_text())
    assert found, "the README's first command is no longer `pip install -e . && starmodel run demo`"
    return found[1]


def copy_of_the_checkout(target: Path) -> Path:
    """The files a clone would have (tracked, and new ones not ignored), as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@dataclass
class FirstRun:
    """The README's command running in a shell; its output, each line with when it came."""

    proc: subprocess.Popen[str]
    url: str
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def when(self, prefix: str) -> float | None:
        return next((at for at, line in self.lines if line.startswith(prefix)), None)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    root = tmp_path_factory.mktemp("first-run")
    clone = copy_of_the_checkout(root / "starmodel")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED and not k.startswith("STARMODEL_")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               STARMODEL_CACHE_DIR=str(root / "empty-cache"), PYTHONUNBUFFERED="1")
    port = free_port()
    command = f"{readme_first_command()} --port {port}"  # the README's CLI section: --port
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", command], cwd=clone, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    run = FirstRun(proc, f"http://127.0.0.1:{port}", started)
    reader = threading.Thread(target=run.read, daemon=True)
    reader.start()
    try:
        deadline = started + FIRST_200_TIMEOUT
        while True:
            assert proc.poll() is None, f"the command ended with {proc.returncode}:\n{run.output()}"
            assert time.monotonic() < deadline, f"no 200 in {FIRST_200_TIMEOUT:.0f} s:\n{run.output()}"
            try:
                if httpx.get(run.url + "/", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        first_200 = time.monotonic() - started
        installed = run.when("Successfully installed") or first_200
        print(f"\nfirst run: install {installed:.1f} s, first 200 after {first_200:.1f} s "
              f"({first_200 - installed:.1f} s after the install)")
        yield run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        reader.join(5)
    assert "Traceback" not in run.output(), run.output()


def style(page: Page, selector: str, prop: str) -> str:
    return str(page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))


def test_the_readme_command_serves_a_styled_live_demo_with_no_other_host(
    first_run: FirstRun,
    new_context: Callable[[], BrowserContext],
    external_requests: ExternalRequests,
) -> None:
    out = first_run.output()
    assert "page assets fetched into" in out, out  # the empty cache was filled, once
    assert "warning: page assets" not in out

    page = new_context().new_page()
    finished: list[Response] = []
    failed: list[str] = []
    page.on("requestfinished", lambda r: finished.append(r.response()) if r.response() else None)
    # a live stream is cut when its page is left: not a failure
    page.on("requestfailed", lambda r: "/_starmodel/live" in r.url or failed.append(f"{r.url} {r.failure}"))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(first_run.url + "/state", wait_until="load")

    # live: Datastar runs (the counters show numbers) and a click changes the counter
    value = page.locator("#counter-value")
    expect(value).to_have_text("0")
    page.wait_for_timeout(300)  # the load event came; let its last "finished" callbacks arrive
    first_load = [r for r in finished if "/_starmodel/live" not in r.url]
    page.click("#counter-inc5")
    expect(value).to_have_text("5")
    expect(page.locator("#counter-doubled")).to_have_text("10")

    # styled: the theme's button colour and font, not the browser's defaults
    assert style(page, "#counter-inc", "backgroundColor") not in BROWSER_DEFAULT_BUTTON
    assert style(page, "#counter-value", "fontSize") == "36px"  # a Tailwind utility (text-4xl)
    font = style(page, "body", "fontFamily")
    assert font and not font.lower().startswith(("times", '"times', "serif")), font
    expect(page.locator("#starmodel-assets-missing")).to_have_count(0)

    # live across sessions: another browser sees a global change
    other = new_context().new_page()
    other.goto(first_run.url + "/state")
    shared = other.locator("#shared-value")
    expect(shared).to_have_text(re.compile(r"^\d+$"))
    before = int(shared.inner_text())
    page.click("#shared-inc")
    expect(shared).to_have_text(str(before + 1))

    # working: the catalogue has products, and its page leads back home
    page.goto(first_run.url + "/products")
    expect(page.get_by_text("Claw hammer")).to_be_visible()
    page.get_by_test_id("sm-home").click()
    expect(page.locator("#home-counter")).to_have_text("5")  # the home page shows the session's counter

    size = sum(r.request.sizes()["responseBodySize"] for r in first_load)
    print(f"home page: {len(first_load)} requests, {size} bytes")
    assert external_requests.urls == []  # nothing was even attempted elsewhere
    assert failed == [] and errors == []

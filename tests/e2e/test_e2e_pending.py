"""Generated buttons show that their event is pending: while a slow event runs, Datastar's
``data-indicator`` signal is true and the button is disabled and ``aria-busy``; when the answer
has come, it is enabled again. A small app of its own, served by ``starmodel run``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from .harness import free_port

pytestmark = pytest.mark.e2e

APP = textwrap.dedent('''
    import asyncio

    from sqlmodel import Field

    from starmodel import Entity, StarModel, event


    class Gadget(Entity, table=True):
        model_config = {"table_name": "pending_gadget"}
        id: int | None = Field(default=None, primary_key=True)
        name: str = "gadget"
        shine: int = 0

        @event
        async def polish(self):
            """Polish it, slowly."""
            await asyncio.sleep(1.5)
            self.shine += 1


    sm = StarModel(entities=[Gadget], title="Pending")
    sm.crud(Gadget)
    app = sm.app
''')


@pytest.fixture
def server(tmp_path: Path, assets_dir: Path) -> Iterator[str]:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SECRET_KEY="pending", STARMODEL_ASSETS="local", STARMODEL_ASSETS_DIR=str(assets_dir),
               DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
               STARMODEL_MIGRATIONS_DIR=str(tmp_path / "no-migrations"))
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", str(port), "--no-reload"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/favicon.ico", timeout=1)
                break
            except httpx.TransportError:
                log_text = (tmp_path / "server.log").read_text()
                assert proc.poll() is None and time.monotonic() < deadline, log_text
                time.sleep(0.1)
        made = httpx.post(f"{url}/api/gadgets", json={"name": "lamp"}, headers={"Origin": url})
        assert made.status_code == 201, made.text
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_a_generated_event_button_is_pending_while_its_event_runs(
    server: str, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(f"{server}/gadgets/1")
    button = page.get_by_test_id("event-polish")
    expect(button).to_be_enabled()
    pending = "() => document.querySelector('[data-testid=event-polish]').getAttribute('aria-busy')"
    button.click()
    expect(button).to_be_disabled(timeout=1000)  # at once: the answer takes 1.5 s
    assert page.evaluate(pending) == "true"
    expect(button).to_be_enabled(timeout=5000)
    assert page.evaluate(pending) == "false"
    shine = httpx.get(f"{server}/api/gadgets/1").json()["shine"]
    assert shine == 1

"""The sign-in pages in Chromium, against an app served by ``starmodel run``: Datastar posts the
forms as form data with its request header, errors show in the form, success follows ``next``,
and the password travels only in the form posts themselves.

The browser runs in a thread of its own, so its event loop never meets the tests' loops.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "browser passphrase"
APP = """
from fasthtml.common import Div, P, Title
from starmodel import StarModel
from starmodel.contrib.auth import Auth

sm = StarModel(entities=[], database_url="sqlite:///{db}")
auth = Auth(sm, after_login="/home", after_logout="/auth/login")
app = sm.app


@app.route("/home")
async def home(request):
    user = await auth.user(request)
    if user is None:
        return auth.login_redirect(request)
    return Title("Home"), Div(P(f"Hello {{user.email}}", id="hello"), auth.logout_button(id="logout"))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    assets = Path(os.environ.get("STARMODEL_ASSETS_DIR") or REPO / ".assets")
    if not (assets / "datastar.js").is_file():
        pytest.fail(f"browser tests need {assets / 'datastar.js'}: run `starmodel assets`", pytrace=False)
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"browser tests drive {CHROMIUM} (Debian's chromium package)", pytrace=False)
    (tmp_path / "authsite.py").write_text(textwrap.dedent(APP.format(db=tmp_path / "site.db")))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARMODEL_") and k not in
           ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")}
    env.update(STARMODEL_ASSETS="local", STARMODEL_ASSETS_DIR=str(assets.resolve()), SECRET_KEY="browser",
               PYTHONUNBUFFERED="1")
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "authsite:app", "--port", str(port),
         "--no-reload"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                started = proc.poll() is None and time.monotonic() < deadline
                assert started, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        text = (tmp_path / "server.log").read_text(errors="replace")
        assert "Traceback" not in text, text


def _scenario(base: str) -> list[dict[str, str]]:
    """Register, sign out, fail, sign in; returns every request the page made."""
    from playwright.sync_api import expect, sync_playwright

    sent: list[dict[str, str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.on("request", lambda r: sent.append({
            "method": r.method, "url": r.url, "body": r.post_data or "",
            "datastar": r.headers.get("datastar-request", ""), "type": r.headers.get("content-type", ""),
        }))
        page.goto(base + "/home")
        expect(page).to_have_url(base + "/auth/login?next=%2Fhome")

        page.goto(base + "/auth/register")
        page.fill("#auth-register-name", "Browser User")
        page.fill("#auth-register-email", "Web@Example.com")
        page.fill("#auth-register-password", PASSWORD)
        page.fill("#auth-register-password_confirm", "something else")
        page.click("#auth-register-submit")
        expect(page.locator("#auth-register-password_confirm-error")).to_have_text("The two passwords differ")
        assert page.input_value("#auth-register-password") == PASSWORD  # nothing typed was replaced
        page.fill("#auth-register-password_confirm", PASSWORD)
        page.click("#auth-register-submit")
        expect(page).to_have_url(base + "/home")
        expect(page.locator("#hello")).to_have_text("Hello web@example.com")

        page.click("#logout")
        expect(page).to_have_url(base + "/auth/login")
        page.goto(base + "/home")
        page.fill("#auth-login-email", "web@example.com")
        page.fill("#auth-login-password", "not the passphrase")
        page.click("#auth-login-submit")
        expect(page.locator("#auth-login-error")).to_contain_text("Email or password is incorrect")
        page.fill("#auth-login-password", PASSWORD)
        page.click("#auth-login-submit")
        expect(page).to_have_url(base + "/home")
        expect(page.locator("#hello")).to_have_text("Hello web@example.com")
        browser.close()
    return sent


def test_sign_in_pages_in_a_real_browser(server: str) -> None:
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(_scenario, server).result(timeout=120)
    posts = [r for r in sent if r["method"] == "POST" and "/auth/" in r["url"]]
    assert {r["url"].removeprefix(server) for r in posts} == {"/auth/register", "/auth/login", "/auth/logout"}
    forms = [r for r in posts if not r["url"].endswith("/logout")]
    for request in forms:
        assert request["datastar"] == "true"
        assert request["type"] == "application/x-www-form-urlencoded"
        assert request["body"].startswith(("name=", "email="))  # form data, not JSON signals
    typed = PASSWORD.replace(" ", "+")  # as form data encodes it
    for request in sent:
        if request not in forms:
            assert PASSWORD not in request["body"] + request["url"] and typed not in request["body"]

"""Sessions end for real, across server processes: two ``starmodel run`` processes share one
PostgreSQL database and one Redis; a copy of a signed-in cookie, taken before the sign-in
ends, is refused by the *other* process once it ends, whatever ended it (sign-out, a new
password, ``starmodel users signout``, the admin's "sign out everywhere", expiry). A refused
cookie is a visitor's: pages send it to sign in, events answer 403, never a 500.

Also the demo: its admin, opened with a copied cookie after sign-out, sends to sign in.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from integration_support import open_stream
from redis_process_support import DATASTAR, ServerProcess, server_env
from sm_http import free_port

AUTH_APP = Path(__file__).resolve().with_name("auth_app.py")
REPO = Path(__file__).resolve().parents[2]
COOKIE = "starmodel_session"
PASSWORD = "correct horse battery"


@dataclass
class AppProcess(ServerProcess):
    """A server process of any app (``starmodel run APP``)."""

    app: str = str(AUTH_APP)

    def start(self) -> None:
        command = [
            sys.executable, "-m", "starmodel.cli.main", "run", self.app,
            "--port", str(self.port), "--no-reload", "--log-level", "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )


Make = Callable[..., AppProcess]


@pytest.fixture
def make_server(postgres, redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Make]:
    """``make(name, app=..., cwd=..., **env)``: a server process (not started) on this test's
    PostgreSQL database and Redis prefix, with the secret key every process shares."""
    made: list[AppProcess] = []

    def make(name: str, app: str = str(AUTH_APP), cwd: Path = tmp_path, **env: str) -> AppProcess:
        full_env = server_env(redis_url=redis_url, redis_prefix=redis_prefix, database_url=postgres.url,
                              migrations_dir=tmp_path / "no-migrations")
        server = AppProcess(name, free_port(), {**full_env, **env}, tmp_path / f"{name}.log", cwd, app=app)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.kill()
    for server in made:
        server.assert_no_traceback()


async def started(*servers: AppProcess) -> tuple[AppProcess, ...]:
    """Start servers one after the other (they share a database: each creates what is missing)."""
    for server in servers:
        server.start()
        await server.wait_up()
    return servers


def users_cli(server: AppProcess, *args: str, stdin: str = "") -> str:
    """``starmodel users ...`` for the app, as its own process (a third one)."""
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "users", *args, "--app", server.app],
        cwd=server.cwd, env=server.env, input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip()


def browser() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=15.0)


async def sign_in(client: httpx.AsyncClient, server: AppProcess, email: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in on ``server``; the session cookie it got (what a thief copies)."""
    answer = await client.post(f"{server.url}/auth/login", data={"email": email, "password": password},
                               headers={**DATASTAR, "Origin": server.url})
    assert answer.status_code == 200, answer.text
    return client.cookies[COOKIE]


async def sign_out(client: httpx.AsyncClient, server: AppProcess) -> None:
    answer = await client.post(f"{server.url}/auth/logout", headers={**DATASTAR, "Origin": server.url})
    assert answer.status_code == 200, answer.text


class Copy:
    """A copied cookie, sent as it is (whatever the server answers) to any process."""

    def __init__(self, cookie: str) -> None:
        self.headers = {"Cookie": f"{COOKIE}={cookie}"}
        self.http = httpx.AsyncClient(timeout=15.0, follow_redirects=False)

    async def who(self, server: AppProcess) -> str | None:
        """Who ``server`` says is signed in (``None``: sent to sign in); a page and an event
        of a signed-in user agree on it."""
        self.http.cookies.clear()
        page = await self.http.get(f"{server.url}/me", headers=self.headers)
        assert page.status_code in (200, 303), (page.status_code, page.text[:300])
        called = await self.http.post(
            f"{server.url}/notebook/write", headers={**self.headers, **DATASTAR, "Origin": server.url},
        )
        assert called.status_code == (200 if page.status_code == 200 else 403), called.text[:300]
        if page.status_code == 303:
            assert page.headers["location"].startswith("/auth/login?next=")
            return None
        return page.text

    async def admin(self, server: AppProcess) -> httpx.Response:
        self.http.cookies.clear()
        return await self.http.get(f"{server.url}/admin", headers=self.headers)

    @contextlib.asynccontextmanager
    async def live(self, server: AppProcess) -> AsyncIterator[object]:
        headers = {**self.headers, **DATASTAR}
        async with open_stream(self.http, f"{server.url}/_starmodel/live", headers=headers) as reader:
            await reader.next(5)  # the state it starts from
            yield reader

    async def aclose(self) -> None:
        await self.http.aclose()


async def ended(reader: object, timeout: float = 10.0) -> bool:
    """Whether the live stream ends within ``timeout`` (heartbeats and messages skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await reader.next(timeout, comments=True)  # type: ignore[attr-defined]
            except EOFError:
                return True


async def test_signing_out_on_one_process_ends_the_copy_on_the_other(make_server):
    a, b = await started(make_server("a"), make_server("b"))
    users_cli(a, "create", "ada@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    async with browser() as ada:
        copy = Copy(await sign_in(ada, a, "ada@example.com"))
        assert await copy.who(b) == "ada@example.com" and await copy.who(a) == "ada@example.com"
        async with copy.live(b) as stream:
            await sign_out(ada, a)
            assert await ended(stream), "the copy's live stream on the other process stayed open"
        assert await copy.who(b) is None and await copy.who(a) is None
        await copy.aclose()


async def test_a_new_password_and_signout_from_the_shell_end_every_copy(make_server):
    a, b = await started(make_server("a"), make_server("b"))
    users_cli(a, "create", "ada@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    async with browser() as laptop, browser() as phone:
        copies = [Copy(await sign_in(laptop, a, "ada@example.com")),
                  Copy(await sign_in(phone, b, "ada@example.com"))]
        assert [await c.who(s) for c in copies for s in (a, b)] == ["ada@example.com"] * 4
        said = users_cli(a, "password", "ada@example.com", "--password-stdin", stdin="another passphrase\n")
        assert said == "password of ada@example.com changed; signed out in 2 browsers"
        assert [await c.who(s) for c in copies for s in (a, b)] == [None] * 4

        copies.append(Copy(await sign_in(laptop, b, "ada@example.com", "another passphrase")))
        copies.append(Copy(await sign_in(phone, a, "ada@example.com", "another passphrase")))
        assert [await c.who(s) for c in copies[2:] for s in (a, b)] == ["ada@example.com"] * 4
        assert users_cli(b, "signout", "ada@example.com") == "ada@example.com signed out in 2 browsers"
        assert [await c.who(s) for c in copies for s in (a, b)] == [None] * 8
        for copy in copies:
            await copy.aclose()


async def test_the_admin_signs_a_user_out_everywhere(make_server):
    a, b = await started(make_server("a"), make_server("b"))
    users_cli(a, "create", "ada@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    users_cli(a, "create", "boss@example.com", "--staff", "--password-stdin", stdin=f"{PASSWORD}\n")
    async with browser() as laptop, browser() as phone, browser() as boss:
        copies = [Copy(await sign_in(laptop, a, "ada@example.com")),
                  Copy(await sign_in(phone, b, "ada@example.com"))]
        await sign_in(boss, b, "boss@example.com")
        page = await boss.get(f"{b.url}/admin/sm_user/1")
        assert page.status_code == 200 and "/auth/users/1/signout" in page.text
        assert "ada@example.com" in page.text
        async with copies[0].live(b) as stream:
            answer = await boss.post(f"{b.url}/auth/users/1/signout", headers={**DATASTAR, "Origin": b.url})
            assert answer.status_code == 200 and "ada@example.com is signed out (2 browsers)" in answer.text
            assert await ended(stream)
        assert [await c.who(s) for c in copies for s in (a, b)] == [None] * 4
        assert (await boss.get(f"{a.url}/me")).text == "boss@example.com"  # only ada's ended
        for copy in copies:
            await copy.aclose()


async def test_a_sign_in_expires_on_every_process(make_server):
    a, b = await started(make_server("a", AUTH_SIGN_IN_FOR="2"), make_server("b", AUTH_SIGN_IN_FOR="2"))
    users_cli(a, "create", "ada@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    async with browser() as ada:
        copy = Copy(await sign_in(ada, a, "ada@example.com"))
        assert await copy.who(b) == "ada@example.com"
        await asyncio.sleep(2.2)
        assert await copy.who(b) is None and await copy.who(a) is None
        await copy.aclose()


async def test_the_demos_admin_refuses_a_cookie_copied_before_sign_out(make_server):
    demo = {"app": "demo", "cwd": REPO, "DEMO_ADMIN_PASSWORD": "demo admin passphrase"}
    a, b = await started(make_server("demo-a", **demo), make_server("demo-b", **demo))
    async with browser() as staff:
        copy = Copy(await sign_in(staff, a, "admin@example.com", "demo admin passphrase"))
        assert (await copy.admin(b)).status_code == 200
        await sign_out(staff, a)
        refused = await copy.admin(b)
        assert refused.status_code == 303 and refused.headers["location"] == "/auth/login?next=%2Fadmin"
        assert (await copy.admin(a)).status_code == 303
        await copy.aclose()

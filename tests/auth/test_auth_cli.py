"""``starmodel users create | list | password | signout`` (a ``starmodel.cli`` plugin): accounts
from the shell, and one clear line for every mistake."""

from __future__ import annotations

import asyncio
import importlib
import json
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from auth_kit import COOKIE, Browser, running
from click.testing import CliRunner

from starmodel.cli.main import cli

APP = """
from argon2 import PasswordHasher
from starmodel import StarModel
from starmodel.contrib.auth import Auth, Passwords

sm = StarModel(entities=[], secret_key="cli", database_url={url!r})
{auth}
app = sm.app
"""
AUTH = "auth = Auth(sm, passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)))"


@pytest.fixture
def make_project(tmp_path, monkeypatch):
    """Writes an app module of a name of its own (modules stay imported) and enters its folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    made: list[str] = []

    def make(url: str | None = None, auth: str = AUTH) -> str:
        name = f"authcli_{secrets.token_hex(4)}"
        source = APP.format(url=url or f"sqlite:///{tmp_path}/cli.db", auth=auth)
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input)
    assert "Traceback" not in result.output
    return result


def test_create_and_list_users(make_project):
    app = make_project()
    made = run("users", "create", "Ada@Example.com", "--name", "Ada", "--password-stdin", "--app", app,
               input="correct horse\n")
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "created user 1 ada@example.com"
    staff = run("users", "create", "boss@example.com", "--staff", "--app", app,
                input="s3cret pass\ns3cret pass\n")  # asked twice, hidden
    assert staff.exit_code == 0, staff.output
    assert "created user 2 boss@example.com (staff)" in staff.output
    listed = run("users", "list", "--app", app)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "EMAIL", "NAME", "STAFF", "CREATED"]
    assert lines[1].split()[:3] == ["1", "ada@example.com", "Ada"]
    assert lines[2].split()[:3] == ["2", "boss@example.com", "yes"]
    as_json = json.loads(run("users", "list", "--json", "--app", app).output)
    assert [(u["email"], u["staff"]) for u in as_json] == [
        ("ada@example.com", False), ("boss@example.com", True)
    ]
    assert "password" not in listed.output and "argon2" not in json.dumps(as_json)


def test_an_empty_list_says_how_to_start(make_project):
    listed = run("users", "list", "--app", make_project())
    assert listed.exit_code == 0 and "no users yet" in listed.output


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "create", "taken@example.com", "--password-stdin"], "another one\n",
     "Error: email: An account with this email exists already"),
    (["users", "create", "new@example.com", "--password-stdin"], "short\n",
     "Error: password: Use at least 8 characters"),
    (["users", "create", "not-an-email", "--password-stdin"], "long enough\n",
     "Error: email: Enter a valid email address"),
    (["users", "create", "new@example.com", "--password-stdin"], "", "Error: no password on standard input"),
])
def test_mistakes_are_one_line(make_project, args, stdin, message):
    app = make_project()
    assert run("users", "create", "taken@example.com", "--password-stdin", "--app", app,
               input="first one\n").exit_code == 0
    result = run(*args, "--app", app, input=stdin)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(message), result.output


def test_no_app_and_no_auth_are_one_line(make_project, tmp_path):
    missing = run("users", "list")
    assert missing.exit_code == 1 and "Error: no app found" in missing.output
    bare = make_project(auth="")
    result = run("users", "list", "--app", bare)
    assert result.exit_code == 1
    assert "has no auth: install it with `Auth(sm)`" in result.output


def test_an_unreachable_database_is_one_line(make_project):
    app = make_project(url="postgresql://postgres@127.0.0.1:1/nothing")
    result = run("users", "create", "x@example.com", "--password-stdin", "--app", app, input="long enough\n")
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database cannot be reached"), result.output


def test_the_command_is_installed_as_a_plugin(make_project, tmp_path):
    app = make_project()
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "users", "create", "sub@example.com", "--password-stdin",
         "--app", app],
        cwd=tmp_path, input="correct horse\n", capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created user 1 sub@example.com"
    again = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "users", "create", "sub@example.com", "--password-stdin",
         "--app", app],
        cwd=tmp_path, input="correct horse\n", capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip() == "Error: email: An account with this email exists already"
    assert Path(tmp_path / "cli.db").is_file()


def _signed_in_twice(module_name: str, tmp_path: Path) -> list[str]:
    """Sign the account ada@example.com in on two browsers of the app; their cookies."""
    sys.path.insert(0, str(tmp_path))
    module = importlib.import_module(module_name)

    async def sign_in_twice() -> list[str]:
        async with running(module.sm):
            browsers = [Browser(module.sm), Browser(module.sm)]
            for browser in browsers:
                assert (await browser.login("ada@example.com", "correct horse")).status_code == 200
                await browser.aclose()
            return [browser.http.cookies[COOKIE] for browser in browsers]

    return asyncio.run(sign_in_twice())


def _who(module_name: str, cookies: list[str], password: str) -> list[str | None]:
    """Who each cookie is signed in as now, and whether ``password`` signs ada in."""
    module = importlib.import_module(module_name)

    async def look() -> list[str | None]:
        async with running(module.sm):
            seen: list[str | None] = []
            for cookie in cookies:
                browser = Browser(module.sm)
                browser.http.cookies.set(COOKIE, cookie, domain="testserver.local")
                page = await browser.http.get("/auth/login")
                seen.append("ada" if "signed in as ada@example.com" in page.text else None)
                await browser.aclose()
            user = await module.auth.authenticate("ada@example.com", password)
            return [*seen, user.email if user else None]

    return asyncio.run(look())


def test_a_new_password_from_the_shell_signs_the_user_out_everywhere(make_project, tmp_path):
    app = make_project()
    assert run("users", "create", "ada@example.com", "--password-stdin", "--app", app,
               input="correct horse\n").exit_code == 0
    cookies = _signed_in_twice(app, tmp_path)
    assert _who(app, cookies, "correct horse") == ["ada", "ada", "ada@example.com"]
    changed = run("users", "password", "ADA@example.com", "--app", app,
                  input="new passphrase\nnew passphrase\n")  # asked twice, hidden
    assert changed.exit_code == 0, changed.output
    assert changed.output.splitlines()[-1] == "password of ada@example.com changed; signed out in 2 browsers"
    assert _who(app, cookies, "correct horse") == [None, None, None]
    assert _who(app, [], "new passphrase") == ["ada@example.com"]


def test_sign_out_everywhere_from_the_shell(make_project, tmp_path):
    app = make_project()
    assert run("users", "create", "ada@example.com", "--password-stdin", "--app", app,
               input="correct horse\n").exit_code == 0
    cookies = _signed_in_twice(app, tmp_path)
    ended = run("users", "signout", "ada@example.com", "--app", app)
    assert ended.exit_code == 0 and ended.output.strip() == "ada@example.com signed out in 2 browsers"
    assert _who(app, cookies, "correct horse") == [None, None, "ada@example.com"]
    again = run("users", "signout", "ada@example.com", "--app", app)
    assert again.output.strip() == "ada@example.com signed out in 0 browsers"


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "signout", "nobody@example.com"], None, "Error: no user nobody@example.com"),
    (["users", "password", "nobody@example.com", "--password-stdin"], "long enough\n",
     "Error: no user nobody@example.com"),
    (["users", "password", "ada@example.com", "--password-stdin"], "short\n",
     "Error: password: Use at least 8 characters"),
    (["users", "password", "ada@example.com", "--password-stdin"], "",
     "Error: no password on standard input"),
])
def test_password_and_signout_mistakes_are_one_line(make_project, args, stdin, message):
    app = make_project()
    assert run("users", "create", "ada@example.com", "--password-stdin", "--app", app,
               input="correct horse\n").exit_code == 0
    result = run(*args, "--app", app, input=stdin)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == message, result.output

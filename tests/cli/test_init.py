"""`starmodel init` and `starmodel make`, end to end, in a virtual environment of their own.

One venv for the module that sees the packages of the environment running the tests (a venv
or the system's Python alike: a `.pth` file adds its site folders), with this checkout
installed into it in editable mode by that environment's pip: offline, a few seconds.
For each template, a project is made with the venv's `starmodel`, its own tests run with the
venv's python (cwd = the project), and `starmodel run` serves its home page and an event over
a real socket. The crud template's migrations (and one `make entity --store sql` adds) are
applied to a PostgreSQL database made for the test and dropped after. `make entity` / `make
page` in a project, then its tests and `starmodel entities list`. The mistakes are one line
and exit code 1 (most through click's CliRunner in this process: fast).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import secrets
import shutil
import site
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import chdir, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from starmodel.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PG_HOST, PG_PORT, PG_USERS = "127.0.0.1", 5432, ("postgres", "root")
TEMPLATES = ("basic", "crud", "dashboard")


# --------------------------------------------------------------------------- the venv


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def starmodel(self) -> str:
        return str(self.path / "bin" / "starmodel")

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: the venv first on PATH, none of the caller's StarModel,
        database or pytest settings."""
        drop = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "VIRTUAL_ENV")
        env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STARMODEL_")}
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env["STARMODEL_ASSETS"] = "cdn"
        env.update(extra)
        return env

    def run(
        self, args: list[str], cwd: Path, timeout: float = 180, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=cwd, env=self.env(**extra), capture_output=True, text=True, timeout=timeout, check=False
        )

    def sm(self, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``starmodel ARGS`` with the venv's command."""
        return self.run([self.starmodel, *args], cwd, **extra)

    def pytest(self, project: Path) -> str:
        """The project's own tests, with the venv's python; their output (they must pass)."""
        done = self.run([self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"the project's tests failed:\n{out}"
        assert re.search(r"\d+ passed", out) and "failed" not in out, out
        return out


def inherit_current_packages(venv_path: Path) -> None:
    """Let the venv import what this interpreter imports. ``venv --system-site-packages`` would
    give it the *base* interpreter's packages, not those of a venv the tests run in; a
    ``.pth`` line that calls ``site.addsitedir`` adds each of this environment's site folders,
    with the ``.pth`` files inside them (editable installs)."""
    folders = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    made = subprocess.run(
        [str(venv_path / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    lines = [f"import site; site.addsitedir({folder!r})" for folder in folders]
    (Path(made.stdout.strip()) / "_inherited_packages.pth").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    inherit_current_packages(path)
    made = Venv(path)
    done = made.run(
        [
            made.python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-e",
            str(ROOT),
        ],
        ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(made.starmodel).is_file()
    return made


def init(venv: Venv, parent: Path, template: str, name: str = "demoapp") -> Path:
    done = venv.sm(parent, "init", name, "--template", template)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"created {name}/ from the {template} template"), done.stdout
    return parent / name


# --------------------------------------------------------------------------- a server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[str]


@contextmanager
def serve(venv: Venv, project: Path) -> Iterator[Server]:
    """``starmodel run --port P`` inside the project (app.py found by discovery)."""
    port = free_port()
    proc = subprocess.Popen(
        [venv.starmodel, "run", "--port", str(port), "--no-reload"],
        cwd=project,
        env=venv.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{proc.stdout.read() if proc.stdout else ''}")
            try:
                httpx.get(base + "/", timeout=2.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError("server did not come up") from None
                time.sleep(0.2)
        yield Server(base, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def signal_value(page_html: str, name: str) -> int:
    """An integer signal written into a page (``"name": 3`` in a data-signals attribute)."""
    found = re.search(rf'"{name}"\s*:\s*(\d+)', html.unescape(page_html))
    assert found, f"no {name} signal on the page"
    return int(found.group(1))


DATASTAR = {"Datastar-Request": "true"}


def check_template_events(template: str, client: httpx.Client) -> None:
    """One event of each template, over the socket, as the page's buttons send it."""
    if template == "basic":
        answer = client.post("/counter/increment?amount=2", headers=DATASTAR, json={})
        assert answer.status_code == 200 and '"count":2' in answer.text
        assert '"count":2' in html.unescape(client.get("/").text)  # the session kept it
        assert client.post("/counter/increment", json={}).status_code == 403  # not a Datastar request
    elif template == "crud":
        answer = client.post("/note/create", headers=DATASTAR, json={"note": {"new_text": "Over a socket"}})
        assert answer.status_code == 200, answer.text
        assert "Over a socket" in client.get("/").text
        refused = client.post("/note/create", headers=DATASTAR, json={"note": {"new_text": ""}})
        assert refused.status_code == 422
    else:
        # the periodic job (every 2 s) samples on its own
        deadline = time.monotonic() + 15
        while signal_value(client.get("/").text, "samples") < 1:
            assert time.monotonic() < deadline, "the periodic job never sampled"
            time.sleep(0.5)
        answer = client.post("/metrics/reset", headers=DATASTAR, json={})
        assert answer.status_code == 200 and '"samples":0' in answer.text


# --------------------------------------------------------------------------- the templates


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_new_project_passes_its_tests_and_serves(venv: Venv, tmp_path: Path, template: str) -> None:
    project = init(venv, tmp_path, template)

    files = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert {
        "app.py",
        "settings.py",
        "layout.py",
        "conftest.py",
        "README.md",
        "pyproject.toml",
        ".env.example",
        ".gitignore",
        "features/__init__.py",
        "tests/test_app.py",
    } <= files
    feature = {"basic": "counter", "crud": "notes", "dashboard": "metrics"}[template]
    assert {
        f"features/{feature}/{m}"
        for m in ("__init__.py", "entities.py", "pages.py", f"tests/test_{feature}.py")
    } <= files
    for name in files - {n for n in files if n.endswith(".db") or "/versions/" in n or ".starmodel/" in n}:
        text = (project / name).read_text()
        assert "{{" not in text, f"{name}: a placeholder was left"
    readme = [line for line in (project / "README.md").read_text().splitlines() if line.strip()]
    assert readme[1] == "```bash" and "starmodel run" in readme[2] and "pytest" in readme[3]
    env_example = (project / ".env.example").read_text()
    assert all(
        f"# {v}=" in env_example for v in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STARMODEL_THEME")
    )
    config = tomllib.loads((project / "pyproject.toml").read_text())
    assert any(d.startswith("starmodel") for d in config["project"]["dependencies"])
    assert config["tool"]["pytest"]["ini_options"]["asyncio_mode"] == "auto"
    if template == "crud":
        assert any(n.startswith("migrations/versions/") and n.endswith("_create_note.py") for n in files)
        assert "demoapp.db" in files  # migrated by init: `starmodel run` works at once
    else:
        assert not any(n.startswith("migrations/") for n in files)

    ruff = shutil.which("ruff")
    if ruff:  # the generated code is lint-clean with its own settings
        linted = venv.run([ruff, "check", "--no-cache", "."], project)
        assert linted.returncode == 0, linted.stdout + linted.stderr

    if template == "basic":  # the README's install command (offline here: no deps, no isolation)
        installed = venv.run(
            [
                venv.python,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "-e",
                ".",
            ],
            project,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr

    venv.pytest(project)

    with serve(venv, project) as server, httpx.Client(base_url=server.base, timeout=10.0) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert 'id="starmodel-live"' in home.text and "<title>" in home.text
        check_template_events(template, client)


# --------------------------------------------------------------------------- make


def redis_is_up() -> bool:
    import redis

    try:
        with redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1) as connection:
            return bool(connection.ping())
    except redis.RedisError:
        return False


def invoke(cwd: Path, *args: str) -> str:
    """``starmodel ARGS`` in this process (faster than the venv's command: `init` and `make`
    import no app), from ``cwd``; its output (it must succeed)."""
    with chdir(cwd):
        result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_make_entity_and_page_in_a_project(venv: Venv, tmp_path: Path) -> None:
    invoke(tmp_path, "init", "shop")
    project = tmp_path / "shop"
    made = [
        invoke(project, "make", "entity", "Basket"),
        invoke(project, "make", "entity", "order-line", "--store", "sql"),
        invoke(project, "make", "entity", "Wishlist", "--store", "redis"),
        invoke(project, "make", "page", "about"),
    ]
    assert made[1].startswith("created features/order_line/ (5 files): the OrderLine entity (sql)")
    assert made[3].startswith("created features/about/ (4 files): the page 'About' at /about")
    for name in ("basket", "order_line", "wishlist"):
        folder = project / "features" / name
        assert all(
            (folder / f).is_file()
            for f in ("__init__.py", "entities.py", "pages.py", f"tests/test_{name}.py")
        )
    assert not (project / "migrations").exists()  # basic has none: tables are created at start

    out = venv.pytest(project)
    if redis_is_up():  # the Redis entity's tests ran
        assert "skipped" not in out, out

    listed = venv.sm(project, "entities", "list")
    assert listed.returncode == 0, listed.stderr
    entities = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert entities == {
        "Basket": "SERVER_MEMORY",
        "Counter": "SERVER_MEMORY",
        "OrderLine": "SERVER_SQL",
        "SharedCounter": "SERVER_MEMORY",
        "Wishlist": "SERVER_REDIS",
    }

    with serve(venv, project) as server, httpx.Client(base_url=server.base, timeout=10.0) as client:
        for path in ("/", "/basket", "/order-line", "/about"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert 'href="/about"' in page.text  # every page is in the navigation
        answer = client.post("/order_line/create", headers=DATASTAR, json={"order_line": {"new_name": "Tea"}})
        assert answer.status_code == 200, answer.text
        assert "Tea" in client.get("/order-line").text


# --------------------------------------------------------------------------- PostgreSQL


def _blocking(coroutine: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(60)


async def _pg(user: str, database: str, statement: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database=database, timeout=5)
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close(timeout=5)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A database of its own (``postgresql://...``), dropped after the test."""
    user = None
    for candidate in PG_USERS:
        try:
            _blocking(_pg(candidate, "test", "select 1"))
            user = candidate
            break
        except Exception:
            continue
    if user is None:
        pytest.skip(f"no PostgreSQL server at {PG_HOST}:{PG_PORT}")
    name = f"sm_init_{secrets.token_hex(4)}"
    _blocking(_pg(user, "test", f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _blocking(_pg(user, "test", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_crud_migrations_apply_to_postgresql(venv: Venv, tmp_path: Path, pg_database: str) -> None:
    invoke(tmp_path, "init", "notebook", "--template", "crud")
    project = tmp_path / "notebook"
    made = invoke(project, "make", "entity", "Invoice", "--store", "sql")
    assert re.search(r"migrations/: \S+_create_invoice\.py \(apply it: starmodel db migrate\)", made)
    versions = sorted(p.name for p in (project / "migrations" / "versions").glob("*.py"))
    # file names start with a random revision id: compare what they create, in any order
    assert sorted(v.rsplit("_", 2)[-1] for v in versions) == ["invoice.py", "note.py"]

    migrated = venv.sm(project, "db", "migrate", DATABASE_URL=pg_database)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "create note" in migrated.stdout and "create invoice" in migrated.stdout
    user, database = pg_database.split("//", 1)[1].split("@")[0], pg_database.rsplit("/", 1)[1]
    rows = _blocking(_pg(user, database, "select tablename from pg_tables where schemaname = 'public'"))
    assert {"note", "invoice", "alembic_version"} <= {row["tablename"] for row in rows}
    columns = _blocking(
        _pg(user, database, "select column_name from information_schema.columns where table_name = 'invoice'")
    )
    assert {row["column_name"] for row in columns} == {"id", "name", "sm_version"}


# --------------------------------------------------------------------------- mistakes


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return str(lines[0])


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("json", "'json' is a module of Python's standard library: pick another project name"),
        ("starmodel", "'starmodel' is StarModel's own module"),
        ("app", "'app' is a module every StarModel project has"),
        ("pytest", "'pytest' is the name of an installed Python module"),
        ("class", "'class' is a Python keyword"),
        ("my app", "'my app' is not a valid project name"),
        ("1st", "'1st' is not a valid project name"),
    ],
)
def test_bad_project_names_are_refused(tmp_path: Path, name: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["init", name, "--dir", str(tmp_path)])
    assert says in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_needs_force(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "demoapp").mkdir()
    (tmp_path / "demoapp" / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["init", "demoapp", "--dir", str(tmp_path)])
    assert "already exists and is not empty: pass --force" in one_line_error(result)
    assert not (tmp_path / "demoapp" / "app.py").exists()

    forced = runner.invoke(cli, ["init", "demoapp", "--dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "demoapp" / "app.py").is_file()
    assert (tmp_path / "demoapp" / "notes.txt").read_text() == "mine"  # other files are left alone

    (tmp_path / "empty").mkdir()  # an empty folder is fine without --force
    assert runner.invoke(cli, ["init", "empty", "--dir", str(tmp_path)]).exit_code == 0
    assert "no such folder" in one_line_error(
        runner.invoke(cli, ["init", "x", "--dir", str(tmp_path / "nope")])
    )


def test_the_real_command_says_it_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "init", "taken"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: taken/ already exists and is not empty: pass --force to write the project into it"
    )
    assert done.stdout == ""


def test_make_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    outside = runner.invoke(cli, ["make", "entity", "Task"])
    assert "not in a StarModel project" in one_line_error(outside)
    assert "not in a StarModel project" in one_line_error(runner.invoke(cli, ["make", "page", "about"]))

    assert runner.invoke(cli, ["init", "proj"]).exit_code == 0
    monkeypatch.chdir(tmp_path / "proj")
    assert runner.invoke(cli, ["make", "page", "about"]).exit_code == 0
    cases = {
        ("make", "page", "about"): "features/about/ exists already: pick another name",
        ("make", "entity", "counter"): "features/counter/ exists already",
        (
            "make",
            "entity",
            "SharedCounter",
        ): "class SharedCounter exists already in features/counter/entities.py",
        ("make", "entity", "9lives"): "'9lives' is not a valid name",
        ("make", "entity", "for"): "'for' is a Python keyword",
        ("make", "entity", "tests"): "a name the project uses itself",
        ("make", "entity", "Entity"): "'Entity' is a name StarModel code uses already",
    }
    for args, says in cases.items():
        assert says in one_line_error(runner.invoke(cli, list(args))), args
    bad_store = runner.invoke(cli, ["make", "entity", "Task", "--store", "mongo"])
    assert bad_store.exit_code == 2 and "'mongo' is not one of 'memory', 'sql', 'redis'" in bad_store.output
    assert not (tmp_path / "proj" / "features" / "task").exists()


def test_names_of_features() -> None:
    from starmodel.cli.make import feature_names

    assert (
        feature_names("TodoItem")
        == feature_names("todo_item")
        == feature_names("todo-item")
        == ("todo_item", "TodoItem", "Todo item")
    )
    assert feature_names("HTTPLog") == ("http_log", "HttpLog", "Http log")

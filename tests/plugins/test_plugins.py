"""Plugins by entry point: the example JSON-file store (installed in CI from
examples/starmodel-jsonfile), `starmodel plugins list`, and broken plugins that must not
break anything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from sm_http import asgi_client, parse_sse, post_event

from starmodel import ConfigurationError, Entity, StarModel, StateStore, event
from starmodel.adapters.driven.plugins import discover
from starmodel.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


class Memo(Entity):
    model_config = {"store": StateStore.CUSTOM, "backend": "jsonfile", "scope": "id",
                    "namespace": "plugin_memo"}
    text: str = ""
    pinned: bool = False

    @event
    def write(cls, text: str):
        cls.records.add(Memo(text=text))

    @event
    def pin(self):
        self.pinned = not self.pinned


class Plain(Entity):
    model_config = {"scope": "global", "namespace": "plugin_plain"}
    count: int = 0

    @event
    def bump(self):
        self.count += 1


def fake_distribution(folder: Path, name: str, entry_points: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info folder with its
    entry points, next to the module they name."""
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (folder / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def broken_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    fake_distribution(
        folder, "broken-plugin",
        """
        [starmodel.persistence]
        broken = broken_plugin_mod:backend
        [starmodel.cli]
        broken = broken_plugin_mod:command
        [starmodel.ui]
        wrong = broken_plugin_mod:missing_attribute
        """,
        "broken_plugin_mod",
        "raise RuntimeError('the plugin crashed while importing')\n",
    )
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("STARMODEL_JSONFILE_DIR", str(folder))
    return folder


def test_the_example_plugin_is_installed_and_loads():
    found = {(p.group, p.name): p for p in discover()}
    store = found[("starmodel.persistence", "jsonfile")]
    assert store.loaded and store.package == "starmodel-jsonfile" and store.error is None
    assert found[("starmodel.cli", "jsonfile")].loaded


async def test_an_entity_on_the_plugin_store_works_through_http_events(data_dir: Path):
    sm = StarModel(entities=[Memo], secret_key="plugins")
    async with asgi_client(sm) as client:
        created = await post_event(client, "/plugin_memo/write", text="buy milk")
        assert created.status_code == 200
        key = next(iter(parse_sse(created.text)[0].signals["plugin_memo"]))
        stored = json.loads((data_dir / "plugin_memo" / f"{key}.json").read_text())
        assert stored["version"] == 1 and stored["data"]["text"] == "buy milk"
        pinned = await post_event(client, "/plugin_memo/pin", _key=key)
        assert parse_sse(pinned.text)[0].signals == {"plugin_memo": {key: {"pinned": True}}}
        bad = await post_event(client, "/plugin_memo/write")  # the text is missing
        assert bad.status_code == 422
    assert [m.text for m in await sm.list(Memo)] == ["buy milk"]
    assert json.loads((data_dir / "plugin_memo" / f"{key}.json").read_text())["data"]["pinned"] is True


def test_plugins_list_text_and_json(broken_plugins: Path):
    runner = CliRunner()
    text = runner.invoke(cli, ["plugins", "list"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].split() == ["GROUP", "NAME", "PACKAGE", "STATUS"]
    jsonfile = next(line for line in lines if "jsonfile" in line and "persistence" in line)
    assert "starmodel-jsonfile 0.1.0" in jsonfile and jsonfile.rstrip().endswith("ok")
    broken = next(line for line in lines if " broken " in line and "persistence" in line)
    assert "error: RuntimeError: the plugin crashed while importing" in broken
    as_json = json.loads(runner.invoke(cli, ["plugins", "list", "--json"]).output)
    rows = {(row["group"], row["name"]): row for row in as_json}
    assert rows[("starmodel.persistence", "jsonfile")]["loaded"] is True
    assert rows[("starmodel.cli", "broken")] == {
        "group": "starmodel.cli", "name": "broken", "target": "broken_plugin_mod:command",
        "package": "broken-plugin", "version": "0.1", "loaded": False,
        "error": "RuntimeError: the plugin crashed while importing",
    }
    only_ui = json.loads(runner.invoke(cli, ["plugins", "list", "--json", "--group", "starmodel.ui"]).output)
    assert [row["name"] for row in only_ui] == ["wrong"]


def test_a_broken_plugin_breaks_neither_the_cli_nor_the_app(broken_plugins: Path, data_dir: Path):
    env = {**os.environ, "PYTHONPATH": f"{broken_plugins}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "STARMODEL_JSONFILE_DIR": str(data_dir)}
    listed = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "entities", "list", "demo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "SharedCounter" in listed.stdout and "Traceback" not in listed.stderr
    stats = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "jsonfile", "stats"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert stats.returncode == 0 and "no entities in" in stats.stdout  # the good plugin's command


async def test_the_app_serves_its_other_entities_when_a_backend_is_broken(broken_plugins: Path):
    class OnBroken(Entity):
        model_config = {"store": StateStore.CUSTOM, "backend": "broken", "namespace": "plugin_on_broken"}
        value: int = 0

        @event
        def touch(self):
            self.value += 1

    sm = StarModel(entities=[Plain, OnBroken], secret_key="plugins")
    assert sm.check_backends() == [
        "OnBroken: persistence plugin 'broken' (broken-plugin) did not load: "
        "RuntimeError: the plugin crashed while importing"
    ]
    async with asgi_client(sm) as client:
        assert (await post_event(client, "/plugin_plain/bump")).status_code == 200
        refused = await post_event(client, "/plugin_on_broken/touch")
        assert refused.status_code == 500
        assert "did not load" in refused.headers["x-starmodel-error"]


def test_starmodel_run_refuses_an_entity_whose_plugin_is_missing(tmp_path: Path):
    (tmp_path / "app.py").write_text(textwrap.dedent('''
        from starmodel import Entity, StarModel, StateStore

        class Ghost(Entity):
            model_config = {"store": StateStore.CUSTOM, "backend": "nosuchstore"}
            value: int = 0

        app = StarModel(entities=[Ghost], secret_key="x").app
    '''))
    run = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "run", "app.py", "--port", "8799"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0
    assert "no persistence plugin named 'nosuchstore' is installed" in run.stderr
    assert "Traceback" not in run.stderr


def test_custom_store_without_a_backend_is_refused_at_definition():
    with pytest.raises(ConfigurationError, match="store CUSTOM needs model_config\\['backend'\\]"):
        class Nowhere(Entity):
            model_config = {"store": StateStore.CUSTOM, "namespace": "plugin_nowhere"}

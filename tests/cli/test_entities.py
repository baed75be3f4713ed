"""`starmodel entities list|inspect` on the demo, text and JSON, and their error cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from starmodel.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("STARMODEL_APP", raising=False)
    return CliRunner()


def test_list_text(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "list", "demo"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ENTITY", "NAMESPACE", "STORE", "SCOPE", "EVENTS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"Counter", "SharedCounter", "LongTask"} <= set(rows)
    assert "global" in rows["SharedCounter"] and "session" in rows["Counter"]
    assert "increment, decrement, add, reset" in rows["Counter"]


def test_list_json(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "list", "demo", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["SharedCounter"]["scope"] == "global"
    assert rows["Counter"]["store"] == "SERVER_MEMORY"
    assert rows["LongTask"]["events"] == ["run", "run_in_background"]


def test_inspect_text(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "inspect", "Counter", "--app", "demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "store: SERVER_MEMORY, scope: session, namespace: counter" in out
    assert "count: int = 0" in out
    assert "doubled: int" in out
    assert "increment(amount: int = 1)  POST /counter/increment  [sync]" in out
    assert "signals: $counter.count, $counter.doubled" in out


def test_inspect_shows_policies_and_allow_rules(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "inspect", "Product", "--app", "demo", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["policy"] == {"read": "anyone", "create": "signed_in", "update": "signed_in",
                              "delete": "staff", "events": "signed_in"}
    assert {e["name"]: e["allow"] for e in info["events"]} == {"adjust_stock": None, "discount": "staff"}
    text = runner.invoke(cli, ["entities", "inspect", "Product", "--app", "demo"]).output
    assert "policy: read anyone, create signed_in, update signed_in, delete staff" in text
    assert "allow: staff" in text


def test_a_record_entity_has_signals_per_record(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "inspect", "Todo", "--app", "demo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["signals"] == ["$todo.<key>.id", "$todo.<key>.title", "$todo.<key>.done"]


@pytest.mark.parametrize(
    ("database_url", "category_type"),
    [
        ("sqlite:///{tmp}/shop.db", "VARCHAR(7)"),  # SQLite stores an enum as text
        # no connection is needed to know the type (this port answers nothing)
        ("postgresql://postgres@127.0.0.1:9/nowhere", "ENUM category (tools, garden, kitchen, toys)"),
    ],
    ids=["sqlite", "postgresql"],
)
def test_column_types_are_those_of_the_app_database(
    database_url: str, category_type: str, tmp_path: Path
) -> None:
    """The demo reads DATABASE_URL when it is imported: a process of its own per database."""
    env = {**os.environ, "DATABASE_URL": database_url.format(tmp=tmp_path)}
    env.pop("STARMODEL_APP", None)
    done = subprocess.run(
        [sys.executable, "-m", "starmodel.cli.main", "entities", "inspect", "Product", "--app", "demo",
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    columns = {c["name"]: c["type"] for c in json.loads(done.stdout)["table"]["columns"]}
    assert columns["category"] == category_type
    assert columns["price"] == "NUMERIC(10, 2)"


def test_inspect_json_by_namespace(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["entities", "inspect", "long_task", "--app", "demo", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["name"] == "LongTask"
    run = next(e for e in info["events"] if e["name"] == "run")
    assert run == {
        "name": "run", "method": "POST", "route": "/long_task/run", "kind": "asyncgen",
        "selector": None, "mode": None, "background": False, "allow": None, "rate": None,
        "params": [{"name": "steps", "type": "int", "default": 10, "required": False}],
    }
    assert info["policy"] is None
    assert info["signals"] == ["$long_task.progress", "$long_task.status"]
    assert [f["name"] for f in info["fields"]] == ["progress", "status"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["entities", "inspect", "Nope", "--app", "demo"], "unknown entity 'Nope'; known entities:"),
        (["entities", "list", "no_such_module"], "no app found: there is no module 'no_such_module'"),
        (["entities", "list", "demo:missing"], "module 'demo' has no 'missing'"),
        (["entities", "list", "missing_file.py"], "missing_file.py does not exist"),
    ],
)
def test_errors_are_one_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_no_app_in_empty_folder(runner: CliRunner, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["entities", "list"])
    assert result.exit_code == 1
    assert "no app found" in result.output


def test_app_file_with_error_is_reported(runner: CliRunner, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text("import nonexistent_dependency_xyz\n")
    result = runner.invoke(cli, ["entities", "list"])
    assert result.exit_code == 1
    assert "cannot import 'app'" in result.output
    assert "nonexistent_dependency_xyz" in result.output


def test_inspect_shows_where_a_redis_entity_lives(runner: CliRunner, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STARMODEL_REDIS_PREFIX", "shop")
    (tmp_path / "redis_shop.py").write_text(
        "from starmodel import Entity, StarModel, StateStore\n"
        "class Basket(Entity):\n"
        "    model_config = {'store': StateStore.SERVER_REDIS, 'ttl': 60}\n"
        "    items: list[str] = []\n"
        "sm = StarModel(entities=[Basket], secret_key='x')\n"
        "app = sm.app\n"
    )
    text = runner.invoke(cli, ["entities", "inspect", "Basket", "--app", "redis_shop.py"])
    assert text.exit_code == 0, text.output
    assert "store: SERVER_REDIS, scope: session, ttl 60s" in text.output
    assert "redis: hash shop:basket:<session id> (fields v, d, o), index shop:basket" in text.output
    as_json = runner.invoke(cli, ["entities", "inspect", "basket", "--app", "redis_shop.py", "--json"])
    expected = {"record": "shop:basket:<session id>", "index": "shop:basket"}
    assert json.loads(as_json.output)["redis"] == expected


def test_inspect_shows_file_fields_and_their_limits(runner: CliRunner) -> None:
    text = runner.invoke(cli, ["entities", "inspect", "FileBoard", "--app", "demo"])
    assert text.exit_code == 0, text.output
    assert ("files: picture (image/*, at most 25,000,000 bytes), "
            "document (application/pdf, text/plain, at most 25,000,000 bytes)") in text.output
    as_json = runner.invoke(cli, ["entities", "inspect", "file_board", "--app", "demo", "--json"])
    assert json.loads(as_json.output)["files"] == {
        "picture": {"max_size": 25_000_000, "accept": ["image/*"]},
        "document": {"max_size": 25_000_000, "accept": ["application/pdf", "text/plain"]},
    }
    counter = runner.invoke(cli, ["entities", "inspect", "Counter", "--app", "demo", "--json"])
    assert json.loads(counter.output)["files"] == {}

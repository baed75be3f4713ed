"""`starmodel entities inspect` says whether an entity keeps presence (the demo's tickets do)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from starmodel.cli.main import cli


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("STARMODEL_APP", raising=False)
    return CliRunner()


def test_inspect_says_an_entity_keeps_presence(runner: CliRunner) -> None:
    text = runner.invoke(cli, ["entities", "inspect", "Ticket", "--app", "demo"])
    assert text.exit_code == 0, text.output
    assert "  presence: kept (who is looking at each instance" in text.output
    as_json = runner.invoke(cli, ["entities", "inspect", "Ticket", "--app", "demo", "--json"])
    assert json.loads(as_json.output)["presence"] is True


def test_inspect_says_nothing_of_presence_for_others(runner: CliRunner) -> None:
    text = runner.invoke(cli, ["entities", "inspect", "Counter", "--app", "demo"])
    assert text.exit_code == 0, text.output
    assert "presence" not in text.output
    as_json = runner.invoke(cli, ["entities", "inspect", "Counter", "--app", "demo", "--json"])
    assert json.loads(as_json.output)["presence"] is False

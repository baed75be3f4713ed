"""`starmodel entities history NAME [KEY]` through CliRunner: text and JSON, a record's entries
or the entity's, the limit, `inspect`'s journal line, and every mistake as one clear line."""

from __future__ import annotations

import asyncio
import json
import secrets
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from starmodel.cli.main import cli
from starmodel.core.context import CallContext
from starmodel.discovery import find_app
from starmodel.testing import EventClient

APP = textwrap.dedent(
    """
    from sqlmodel import Field
    from starmodel import Entity, StarModel, event

    class Diary(Entity, table=True):
        id: int | None = Field(default=None, primary_key=True)
        mood: str = "calm"
        model_config = {"journal": {"keep": 50}, "namespace": "cli_diary"}

        @event
        def feel(self, mood: str) -> None:
            self.mood = mood

    class Scratch(Entity):
        lines: int = 0
        model_config = {"journal": True, "namespace": "cli_scratch"}

    class Unjournaled(Entity):
        lines: int = 0
        model_config = {"namespace": "cli_unjournaled"}

    sm = StarModel(entities=[Diary, Scratch, Unjournaled], database_url=DATABASE_URL,
                   secret_key="cli-history", migrations_dir=MIGRATIONS)
    """
)


@pytest.fixture
def app_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("STARMODEL_APP", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    path = tmp_path / f"diary_app_{secrets.token_hex(4)}.py"  # a module of its own per test
    url = f"sqlite:///{tmp_path / 'diary.db'}"
    path.write_text(f"DATABASE_URL = {url!r}\nMIGRATIONS = {str(tmp_path / 'none')!r}\n" + APP)
    sm: Any = find_app(str(path)).starmodel
    diary = sm.entities()[0]

    async def fill() -> None:
        async with EventClient(sm) as client:
            for _ in range(2):
                async with sm.dispatcher.uow_factory(diary) as uow:
                    uow.add(diary())
                    await uow.commit(CallContext(session_id="server"))
            await client.call(diary.feel, _key=1, mood="glad")
            await client.call(diary.feel, _key=1, mood="tired")
            result = await client.call(diary.feel, _key=2, mood="bold")
            assert result.response.status_code == 200, result.response.text

    asyncio.run(fill())
    return str(path)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["entities", *args])


def test_history_of_one_record_in_text(app_file: str) -> None:
    result = run("history", "Diary", "1", "--app", app_file)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "feel(mood=\"tired\")" in lines[0] and "v3" in lines[0] and "by session " in lines[0]
    assert lines[1].strip() == 'mood: "glad" -> "tired"'
    assert 'mood: "calm" -> "glad"' in result.output
    assert "(create)" in result.output and "bold" not in result.output


def test_history_of_the_entity_in_json_with_a_limit(app_file: str) -> None:
    result = run("history", "cli_diary", "--app", app_file, "--json", "--limit", "2")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [(e["key"], e["event"], e["changes"]) for e in entries] == [
        ("2", "feel", {"mood": ["calm", "bold"]}),
        ("1", "feel", {"mood": ["glad", "tired"]}),
    ]
    assert set(entries[0]) >= {"id", "entity", "key", "version", "event", "params", "actor", "at", "changes"}


def test_a_record_without_entries_says_so(app_file: str) -> None:
    result = run("history", "Diary", "99", "--app", app_file)
    assert result.exit_code == 0 and result.output.strip() == "no journal entries for Diary 99"


def test_inspect_shows_the_journal_setting(app_file: str) -> None:
    shown = run("inspect", "Diary", "--app", app_file)
    assert "journal: on (keep 50 per record)" in shown.output
    off = run("inspect", "Unjournaled", "--app", app_file, "--json")
    assert json.loads(off.output)["journal"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("history", "Nope"), "unknown entity 'Nope'"),
        (("history", "Unjournaled"), "Unjournaled keeps no journal"),
        (("history", "Scratch"), "kept in the memory of each server process"),
        (("history", "Diary", "--limit", "0"), "Invalid value for '--limit'"),
    ],
)
def test_mistakes_are_one_clear_line(app_file: str, args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--app", app_file)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output

"""The example of docs/journal.md runs as written: its files go to a temporary project and its
tests run with pytest in a subprocess, as a user would run them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.example_project import run_example_project

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "journal.md"
FILE_BLOCK = re.compile(r"```python\n# ([\w.]+\.py)\n(.*?)```", re.S)
SETTINGS = (
    '[tool.pytest.ini_options]\nasyncio_mode = "auto"\nasyncio_default_fixture_loop_scope = "function"\n'
)


def test_the_journal_guide_example_passes(tmp_path: Path) -> None:
    files = dict(FILE_BLOCK.findall(DOC.read_text()))
    assert set(files) == {"documents.py", "test_documents.py"}, "the example lost a file"
    run_example_project(tmp_path, {**files, "pyproject.toml": SETTINGS}, "test_documents.py")


def test_the_guide_names_what_the_code_offers() -> None:
    text = DOC.read_text()
    for name in ("sm.journal.history", "sm.journal.undo", "UndoRefused", "starmodel entities history",
                 '"keep"', "max_age", "starmodel_journal"):
        assert name.strip('"') in text

"""The example of docs/presence.md runs as written: its files go to a temporary project and
its tests run with pytest in a subprocess, as a user would run them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.example_project import run_example_project

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "presence.md"
FILE_BLOCK = re.compile(r"```python\n# ([\w.]+\.py)\n(.*?)```", re.S)
SETTINGS = (
    '[tool.pytest.ini_options]\nasyncio_mode = "auto"\nasyncio_default_fixture_loop_scope = "function"\n'
)


def test_the_presence_guide_example_passes(tmp_path: Path) -> None:
    files = dict(FILE_BLOCK.findall(DOC.read_text()))
    assert set(files) == {"tickets.py", "naming.py", "test_tickets.py"}, "the example lost a file"
    run_example_project(tmp_path, {**files, "pyproject.toml": SETTINGS}, "test_tickets.py")

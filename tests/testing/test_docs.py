"""The example in docs/testing.md runs as written (its files are written to a temporary
project and run by pytest in a subprocess, as a user would), and so does the README's
"Testing your app" snippet."""

from __future__ import annotations

import re
import types
from pathlib import Path

from tests.docs.example_project import run_example_project

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing.md"
README = REPO / "README.md"
FILE_BLOCK = re.compile(r"```(?:python|toml)\n# ([\w.]+\.(?:py|toml))\n(.*?)```", re.S)


def example_files() -> dict[str, str]:
    return {name: body for name, body in FILE_BLOCK.findall(DOC.read_text())}


def test_the_docs_example_project_passes(tmp_path: Path) -> None:
    files = example_files()
    assert set(files) == {"myapp.py", "pyproject.toml", "test_myapp.py"}, "the example lost a file"
    run_example_project(tmp_path, files, "test_myapp.py")


def readme_snippet() -> str:
    section = README.read_text().split("## Testing your app", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def tutorial_counter() -> str:
    section = README.read_text().split("## The 5-minute tutorial", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


async def test_the_readme_snippet_runs(starmodel_client) -> None:
    module = types.ModuleType("readme_testing")
    exec(compile(tutorial_counter() + "\n" + readme_snippet(), str(README), "exec"), module.__dict__)
    await module.test_increment(starmodel_client)

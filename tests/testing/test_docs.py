"""The example in docs/testing.md runs as written (its files are written to a temporary
project and run by pytest in a subprocess, as a user would), and so does the README's
"Testing your app" snippet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing.md"
README = REPO / "README.md"
FILE_BLOCK = re.compile(r"```(?:python|toml)\n# ([\w.]+\.(?:py|toml))\n(.*?)```", re.S)


def example_files() -> dict[str, str]:
    return {name: body for name, body in FILE_BLOCK.findall(DOC.read_text())}


def test_the_docs_example_project_passes(tmp_path: Path) -> None:
    files = example_files()
    assert set(files) == {"myapp.py", "pyproject.toml", "test_myapp.py"}, "the example lost a file"
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    tests = len(re.findall(r"^async def test_", files["test_myapp.py"], flags=re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARMODEL_", "PYTEST_"))}
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "test_myapp.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{tests} passed" in run.stdout, run.stdout


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

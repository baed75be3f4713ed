"""The example project of docs/ui.md runs as written: its files go to a temporary project and
its tests run with pytest in a subprocess, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ui.md"
FILE_BLOCK = re.compile(r"```python\n# ([\w.]+\.py)\n(.*?)```", re.S)
SETTINGS = (
    '[tool.pytest.ini_options]\nasyncio_mode = "auto"\nasyncio_default_fixture_loop_scope = "function"\n'
)


def test_the_ui_guide_example_passes(tmp_path: Path) -> None:
    files = dict(FILE_BLOCK.findall(DOC.read_text()))
    assert set(files) == {"shop.py", "test_shop.py"}, "the example lost a file"
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    (tmp_path / "pyproject.toml").write_text(SETTINGS)
    tests = len(re.findall(r"^async def test_", files["test_shop.py"], flags=re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARMODEL_", "PYTEST_"))}
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "test_shop.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{tests} passed" in run.stdout, run.stdout

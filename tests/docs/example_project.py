"""Running a guide's example project as a user would: its files in a folder of their own, its
tests with pytest in a subprocess, none of the developer's StarModel settings leaking in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def run_example_project(folder: Path, files: dict[str, str], tests_file: str) -> None:
    """Write ``files`` into ``folder`` and check that every test of ``tests_file`` passes."""
    for name, body in files.items():
        (folder / name).write_text(body)
    tests = len(re.findall(r"^async def test_", files[tests_file], flags=re.M))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STARMODEL_", "PYTEST_"))}
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", tests_file],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{tests} passed" in run.stdout, run.stdout

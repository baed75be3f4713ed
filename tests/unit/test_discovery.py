"""App discovery lives outside the CLI (the generated env.py reaches it through
``starmodel.migrations``); the CLI says its errors as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from starmodel.cli.discovery import find_app as cli_find_app
from starmodel.discovery import AppNotFound, find_app

ROOT = Path(__file__).resolve().parents[2]


def test_what_env_py_imports_loads_no_cli_module() -> None:
    code = (
        "import json, sys\n"
        "import starmodel.migrations\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('starmodel.cli'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_missing_app_is_app_not_found_and_one_cli_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STARMODEL_APP", raising=False)
    with pytest.raises(AppNotFound, match="no app found: there is no module 'no_such_app_here'"):
        find_app("no_such_app_here")
    with pytest.raises(click.ClickException, match="no app found: pass APP"):
        cli_find_app(None)

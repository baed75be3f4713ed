"""docs/plugins.md stays true: its plugin and its contract test are written out and run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"```python title=(\S+)\n(.*?)```", re.S)


def test_the_guides_plugin_passes_the_contract_suite(tmp_path: Path) -> None:
    files = dict(BLOCK.findall(GUIDE.read_text()))
    assert set(files) == {"dict_store.py", "test_dict_store.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
         "test_dict_store.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 15, run.stdout[-500:]

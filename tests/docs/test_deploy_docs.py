"""docs/deploy.md shows the files of deploy/ as they are, and the systemd unit is one systemd
accepts (the nginx config is run by tests/e2e/test_e2e_nginx.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
SHOWN = re.compile(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", re.S)


def test_the_page_shows_every_deploy_file_as_it_is() -> None:
    shown = dict(SHOWN.findall(DOC.read_text(encoding="utf-8")))
    files = {str(path.relative_to(ROOT)) for path in (ROOT / "deploy").rglob("*") if path.is_file()}
    assert set(shown) == files
    for name, text in shown.items():
        assert text == (ROOT / name).read_text(encoding="utf-8"), f"docs/deploy.md and {name} differ"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on the unit, with its paths pointed at ones that exist here
    (an unknown key, section or bad value is reported on stderr)."""
    unit = (ROOT / "deploy" / "systemd" / "starmodel@.service").read_text(encoding="utf-8")
    for old, new in {
        "/srv/app/.venv/bin/starmodel": sys.executable,
        "/srv/app": str(tmp_path),
        "EnvironmentFile=/etc/starmodel/app.env": f"EnvironmentFile={tmp_path / 'app.env'}",
        "User=starmodel": "User=root",
        "Group=starmodel": "Group=root",
    }.items():
        assert old in unit
        unit = unit.replace(old, new)
    (tmp_path / "app.env").write_text("SECRET_KEY=x\n")
    (tmp_path / "starmodel@.service").write_text(unit)
    verify = shutil.which("systemd-analyze")
    assert verify is not None, "systemd-analyze (Debian package systemd) is needed"
    checked = subprocess.run([verify, "verify", str(tmp_path / "starmodel@8001.service")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr

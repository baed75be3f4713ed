"""``starmodel assets``: put the Datastar client and theme files in the app's assets folder,
taken from registry packages (PyPI, npm), so pages work without a CDN."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import click

__all__ = ["assets_command"]

# The Datastar 1.x client ships inside this PyPI wheel.
DATASTAR_WHEEL = "starhtml"
DATASTAR_MEMBER = "starhtml/static/js/datastar-core.js"
NPM_FILES = {
    "franken-ui@2.0.0": {
        "package/dist/css/core.min.css": "franken-ui/core.min.css",
        "package/dist/js/core.iife.js": "franken-ui/core.iife.js",
        "package/dist/js/icon.iife.js": "franken-ui/icon.iife.js",
    },
    "daisyui@4.12.24": {"package/dist/full.css": "daisyui/full.css"},
    # Tailwind's in-browser build (v4) stands in for the v3 play CDN MonsterUI links to.
    "@tailwindcss/browser@4": {"package/dist/index.global.js": "tailwind/tailwind.js"},
}


def fetch_datastar(target: Path, workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--python-version",
         "3.12", "--only-binary=:all:", DATASTAR_WHEEL, "-d", str(workdir)],
        capture_output=True, text=True, check=False,
    )
    wheels = sorted(workdir.glob(f"{DATASTAR_WHEEL}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise click.ClickException(
            f"could not download {DATASTAR_WHEEL} from PyPI: {result.stderr.strip()[-300:]}"
        )
    with zipfile.ZipFile(wheels[-1]) as wheel:
        try:
            data = wheel.read(DATASTAR_MEMBER)
        except KeyError:
            raise click.ClickException(f"{wheels[-1].name} has no {DATASTAR_MEMBER}") from None
    (target / "datastar.js").write_bytes(data)


def fetch_npm(target: Path, workdir: Path) -> list[str]:
    npm = shutil.which("npm")
    if npm is None:
        return ["npm not found: theme files (franken-ui, daisyui, tailwind) skipped; pages stay usable"]
    notes = []
    for spec, members in NPM_FILES.items():
        result = subprocess.run([npm, "pack", spec, "--silent"], cwd=workdir,
                                capture_output=True, text=True, check=False)
        tarball = workdir / result.stdout.strip().splitlines()[-1] if result.stdout.strip() else None
        if result.returncode != 0 or tarball is None or not tarball.is_file():
            notes.append(f"npm pack {spec} failed: {result.stderr.strip()[-200:]}")
            continue
        with tarfile.open(tarball) as archive:
            names = set(archive.getnames())
            for member, dest in members.items():
                extracted = archive.extractfile(member) if member in names else None
                if extracted is None:
                    notes.append(f"{spec} has no {member}")
                    continue
                path = target / dest
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(extracted.read())
    return notes


@click.command("assets")
@click.option("--dir", "directory", default=".assets", show_default=True,
              type=click.Path(file_okay=False), help="Where to put the files.")
@click.option("--datastar-only", is_flag=True, help="Fetch only the Datastar client.")
def assets_command(directory: str, datastar_only: bool) -> None:
    """Fetch the Datastar client and MonsterUI theme files for STARMODEL_ASSETS=local."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fetch_datastar(target, Path(tmp))
        notes = [] if datastar_only else fetch_npm(target, Path(tmp))
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    click.echo(f"assets in {target}: {', '.join(files)}")
    click.echo(f"serve them with STARMODEL_ASSETS=local STARMODEL_ASSETS_DIR={target}")

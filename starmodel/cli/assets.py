"""``starmodel assets``: put the Datastar client and theme files in the app's assets folder,
taken from registry packages (PyPI, npm), and compile the app's Tailwind CSS there, so pages
work without a CDN."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import click

from starmodel.adapters.assets import COMPILED_CSS
from starmodel.cli.tailwind_css import CssBuildError, build_css, default_cache_dir

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
@click.option("--dir", "directory", default=".assets", show_default=True, metavar="PATH",
              help="Where to put the files.")
@click.option("--source", "sources", multiple=True, default=["."], show_default=True, metavar="PATH",
              help="The app's files or folders whose Tailwind classes go into the compiled CSS "
                   "(repeatable).")
@click.option("--cache-dir", envvar="STARMODEL_CACHE_DIR", default=None, metavar="PATH",
              help="Where the Tailwind CLI is kept between runs [default: ~/.cache/starmodel].")
@click.option("--datastar-only", is_flag=True, help="Fetch only the Datastar client.")
@click.option("--no-css", is_flag=True, help="Do not build the compiled Tailwind CSS.")
@click.option("--css-only", is_flag=True,
              help="Only (re)build the compiled Tailwind CSS, e.g. after adding classes.")
def assets_command(directory: str, sources: tuple[str, ...], cache_dir: str | None,
                   datastar_only: bool, no_css: bool, css_only: bool) -> None:
    """Fetch the Datastar client and MonsterUI theme files for STARMODEL_ASSETS=local, and
    build the Tailwind CSS of the app's classes."""
    if css_only and (no_css or datastar_only):
        raise click.ClickException("--css-only cannot be combined with --no-css or --datastar-only")
    source_paths = [Path(s) for s in sources]
    missing = [p for p in source_paths if not p.exists()]
    if missing:
        raise click.ClickException(f"--source {missing[0]} does not exist")
    target = _assets_folder(Path(directory))
    notes: list[str] = []
    if not css_only:
        with tempfile.TemporaryDirectory() as tmp:
            fetch_datastar(target, Path(tmp))
            notes = [] if datastar_only else fetch_npm(target, Path(tmp))
    if not (datastar_only or no_css):
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        try:
            build_css(target, source_paths, cache)
        except CssBuildError as exc:
            if css_only:
                raise click.ClickException(f"no compiled CSS: {exc}") from None
            notes.append(f"compiled Tailwind CSS not built ({exc}); {_css_fallback(target)}")
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    click.echo(f"assets in {target}: {', '.join(files)}")
    click.echo(f"serve them with STARMODEL_ASSETS=local STARMODEL_ASSETS_DIR={target}")


def _assets_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"--dir {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create --dir {folder}: {exc.strerror}") from None
    return folder


def _css_fallback(target: Path) -> str:
    if (target / COMPILED_CSS).is_file():
        return f"the previous {COMPILED_CSS} is kept"
    if (target / "tailwind" / "tailwind.js").is_file():
        return "pages use the in-browser Tailwind build (tailwind/tailwind.js) instead"
    return "pages get no Tailwind utilities"

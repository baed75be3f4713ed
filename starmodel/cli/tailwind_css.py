"""The compiled Tailwind CSS of ``starmodel assets``: the utilities an app's sources, MonsterUI
and StarModel use, built with the Tailwind CLI from the npm registry into ``tailwind/app.css``.

Pages that find that file link it instead of running Tailwind in the browser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from starmodel.adapters.assets import COMPILED_CSS, TAILWIND_INPUT

__all__ = ["TAILWIND_PACKAGES", "CssBuildError", "build_css", "default_cache_dir", "input_css"]

TAILWIND_PACKAGES = ("tailwindcss@4", "@tailwindcss/cli@4")
# Folders of a source tree that never hold the app's markup.
SKIPPED_FOLDERS = (".venv", "venv", "node_modules", ".git")
# Classes MonsterUI builds at run time from arguments (Grid's columns, NavBar's breakpoint, the
# defaults of UkFormSection, DiceBearAvatar and DividerLine): no source file spells them out.
MONSTERUI_GENERATED = (
    "{,sm:,md:,lg:,xl:}grid-cols-{1..12}",
    "{sm:,md:,lg:,xl:}{hidden,block,flex-row,items-center,gap-3,mt-0,w-auto}",
    "space-y-6 py-6 h-20 w-20 my-4 h-[2px]",
)
NPM_TIMEOUT = 300
BUILD_TIMEOUT = 120


class CssBuildError(Exception):
    """The CSS could not be built; the message says why in one line."""


def default_cache_dir() -> Path:
    """Where the Tailwind CLI is installed once and reused (``$XDG_CACHE_HOME/starmodel``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "starmodel"


def build_css(target: Path, sources: Sequence[Path], cache_dir: Path) -> Path:
    """Build ``target/tailwind/app.css`` for the classes found in ``sources``.

    Args:
        target: the assets folder (left out of the scan, as are virtualenvs and node_modules).
        sources: the app's files or folders.
        cache_dir: where the Tailwind CLI is kept between runs.

    Raises:
        CssBuildError: npm or node is missing, the install or the build failed.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise CssBuildError(f"{'node' if node is None else 'npm'} not found")
    install = _installed_cli(npm, cache_dir)
    output = target / COMPILED_CSS
    output.parent.mkdir(parents=True, exist_ok=True)
    skipped = [target, cache_dir]
    with tempfile.TemporaryDirectory(dir=install) as work:
        # Inside the install folder, so that the `tailwindcss/...` imports resolve.
        source_css = Path(work) / "app.input.css"
        source_css.write_text(input_css(sources, skipped), encoding="utf-8")
        built = Path(work) / "app.css"
        _run([node, str(_cli_script(install)), "-i", str(source_css), "-o", str(built), "--minify"],
             cwd=Path(work), timeout=BUILD_TIMEOUT, what="the Tailwind build")
        if not built.is_file() or built.stat().st_size == 0:
            raise CssBuildError("the Tailwind build wrote no CSS")
        shutil.copyfile(built, output.with_suffix(".tmp"))
        os.replace(output.with_suffix(".tmp"), output)
    return output


def input_css(sources: Sequence[Path], skipped: Sequence[Path] = ()) -> str:
    """The Tailwind input: the setup the in-browser build gets too (``TAILWIND_INPUT``), and
    the folders to scan for class names."""
    lines = TAILWIND_INPUT.splitlines()
    for source in sources:
        folder = source.resolve()
        lines.append(f"@source {_css_string(folder)};")
        if folder.is_dir():
            hidden = [folder / name for name in SKIPPED_FOLDERS]
            hidden += [p.resolve() for p in skipped if p.resolve().is_relative_to(folder)]
            lines += [f"@source not {_css_string(p)};" for p in hidden if p.exists()]
    for package in ("monsterui", "starmodel"):
        spec = find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            lines.append(f"@source {_css_string(Path(location).resolve())};")
    lines += [f'@source inline("{classes}");' for classes in MONSTERUI_GENERATED]
    return "\n".join(lines) + "\n"


def _installed_cli(npm: str, cache_dir: Path) -> Path:
    """The cache folder holding the Tailwind CLI, installed on first use.

    A fresh install goes to a temporary folder first and is renamed into place, so a run
    that stops half-way, or two runs at once, never leave a broken cache.
    """
    install = cache_dir / "tailwind-4"
    if _cli_script(install).is_file():
        return install
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="tailwind-install-", dir=cache_dir))
    except OSError as exc:
        raise CssBuildError(f"cannot use the cache folder {cache_dir}: {exc.strerror}") from None
    try:
        # --ignore-scripts: the native parts come as npm packages, nothing is downloaded.
        _run([npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
              "--ignore-scripts", "--loglevel=error", *TAILWIND_PACKAGES],
             cwd=staging, timeout=NPM_TIMEOUT, what=f"npm install {' '.join(TAILWIND_PACKAGES)}")
        if not _cli_script(staging).is_file():
            raise CssBuildError("npm installed no Tailwind CLI")
        try:
            staging.rename(install)
        except OSError:
            if not _cli_script(install).is_file():  # not another run's finished install
                raise CssBuildError(f"cannot write to the cache folder {cache_dir}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return install


def _cli_script(install: Path) -> Path:
    package = install / "node_modules" / "@tailwindcss" / "cli"
    try:
        bin_field = json.loads((package / "package.json").read_text(encoding="utf-8"))["bin"]
    except (OSError, ValueError, KeyError):
        return package / "dist" / "index.mjs"
    entry = bin_field if isinstance(bin_field, str) else bin_field.get("tailwindcss", "")
    return package / entry


def _run(command: list[str], cwd: Path, timeout: float, what: str) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CssBuildError(f"{what} took more than {timeout:.0f} s") from None
    except OSError as exc:
        raise CssBuildError(f"{what} could not start: {exc.strerror}") from None
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout).split())[-300:]
        raise CssBuildError(f"{what} failed: {detail or f'exit code {result.returncode}'}")


def _css_string(path: Path) -> str:
    text = path.as_posix().replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

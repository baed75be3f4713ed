"""`starmodel assets` builds the compiled Tailwind CSS of an app's classes with the Tailwind CLI
from the npm registry (one real install per test session, in a cache every test shares);
without npm, or when the build fails, the rest still works and says why in one line."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from starmodel.adapters.assets import TAILWIND_INPUT
from starmodel.cli.main import cli
from starmodel.cli.tailwind_css import input_css

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

needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None or shutil.which("node") is None, reason="needs node and npm"
)


@pytest.fixture(scope="session")
def tailwind_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Tailwind CLI install for the whole session."""
    return tmp_path_factory.mktemp("tailwind-cache")


@pytest.fixture(scope="session")
def built_app(tailwind_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny app folder, and what `starmodel assets --css-only` printed when run in it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("needs node and npm")
    app = tmp_path_factory.mktemp("app")
    (app / "cards.py").write_text(USED)
    for name, text in HIDDEN.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    with contextlib.chdir(app):  # the default --source is the current folder, --dir .assets
        result = CliRunner().invoke(cli, ["assets", "--css-only", "--cache-dir", str(tailwind_cache)])
    assert result.exit_code == 0, result.output
    return app, result.output


@needs_npm
def test_the_app_classes_and_their_dark_variant_are_compiled(built_app: tuple[Path, str]) -> None:
    app, output = built_app
    css = (app / ".assets" / "tailwind" / "app.css").read_text()
    assert ".bg-fuchsia-700{" in css
    assert r".dark\:bg-lime-300:where(.dark,.dark *){" in css  # dark = the class on <html>
    assert r".w-\[4242px\]{" in css
    assert "tailwind/app.css" in output
    assert len(css.splitlines()) <= 3  # minified
    # unlayered, as the CDN's Tailwind gives them: franken-ui's unlayered CSS would beat layers
    assert "@layer utilities" not in css


@needs_npm
def test_unused_classes_and_skipped_folders_stay_out(built_app: tuple[Path, str]) -> None:
    css = (built_app[0] / ".assets" / "tailwind" / "app.css").read_text()
    assert UNUSED.split("[")[1] not in css
    for text in HIDDEN.values():
        hidden_value = text.split("[")[1].split("]")[0]
        assert hidden_value not in css, text


@needs_npm
def test_monsterui_classes_are_compiled_too(built_app: tuple[Path, str]) -> None:
    css = (built_app[0] / ".assets" / "tailwind" / "app.css").read_text()
    assert r".lg\:grid-cols-3{" in css  # built at run time by monsterui's Grid(cols_lg=3)
    assert ".uk-btn{" not in css  # franken-ui's own classes come from its CSS, not from Tailwind


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


def test_without_npm_the_other_assets_are_fetched_with_a_warning(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    target = tmp_path / "assets"
    result = CliRunner().invoke(cli, ["assets", "--dir", str(target)], env={"PATH": str(empty)})
    assert result.exit_code == 0, result.output
    assert (target / "datastar.js").is_file()
    assert not (target / "tailwind" / "app.css").exists()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any("compiled Tailwind CSS not built (node not found)" in w for w in warnings), warnings
    assert "Traceback" not in result.output


def test_css_only_without_npm_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["assets", "--css-only", "--dir", str(tmp_path / "a")],
                                env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: no compiled CSS: node not found"]


@needs_npm
def test_a_failed_build_is_one_line_and_keeps_the_previous_css(tmp_path: Path) -> None:
    cli_package = tmp_path / "cache" / "tailwind-4" / "node_modules" / "@tailwindcss" / "cli"
    cli_package.mkdir(parents=True)
    (cli_package / "package.json").write_text(json.dumps({"bin": {"tailwindcss": "fail.mjs"}}))
    (cli_package / "fail.mjs").write_text('console.error("Cannot parse the input"); process.exit(3);')
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dir", "{file}"], "Error: --dir {file} is a file, not a folder"),
        (["--source", "{missing}"], "Error: --source {missing} does not exist"),
        (["--css-only", "--no-css"], "Error: --css-only cannot be combined with --no-css or --datastar-only"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    names = {"file": str(tmp_path / "a-file"), "missing": str(tmp_path / "nowhere")}
    (tmp_path / "a-file").write_text("not a folder")
    result = CliRunner().invoke(cli, ["assets", *[a.format(**names) for a in args]])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message.format(**names)]
    assert "Traceback" not in result.output

"""Page assets on disk and the page headers they give: the app's folder first, then the user's
cache; content-hashed names; the compiled Tailwind CSS instead of the in-browser build when it
is there; what is missing is left out (never a CDN address) and named by the notice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fasthtml.common import to_xml

from starmodel.adapters.driving.web.asset_bundle import (
    BUNDLE_FILES,
    MANIFEST,
    PageAssets,
    bundle_folder,
    bundle_id,
    default_cache_dir,
)
from starmodel.adapters.driving.web.assets import TAILWIND_INPUT, missing_assets_notice, page_headers
from starmodel.adapters.driving.web.served_assets import ServedAssets
from starmodel.app.settings import Settings

EXTERNAL = re.compile(r"(?:src|href)=\"(?!/)[^\"]*\"|https?://")
HASHED = r"\.[0-9a-f]{10}\."


def fill(folder: Path, *, compiled: bool = False, names: tuple[str, ...] = BUNDLE_FILES) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"/* {folder.name}: {name} */")
    if compiled:
        (folder / "tailwind").mkdir(parents=True, exist_ok=True)
        (folder / "tailwind" / "app.css").write_text(".flex{display:flex}")
    return folder


def rendered(headers: list[object]) -> str:
    return "\n".join(to_xml(h) for h in headers)


def local_headers(folder: Path, cache: Path, theme: str = "blue") -> str:
    return rendered(page_headers("local", theme, PageAssets.resolve(folder, cache)))


@pytest.mark.parametrize("compiled", [False, True], ids=["in-browser-tailwind", "compiled-css"])
def test_local_headers_name_no_external_address(tmp_path: Path, compiled: bool) -> None:
    html = local_headers(fill(tmp_path / "app", compiled=compiled), tmp_path / "cache")
    assert not EXTERNAL.findall(html)
    assert re.search(rf'src="/_starmodel/assets/datastar{HASHED}js"', html)
    assert re.search(rf'href="/_starmodel/assets/franken-ui/core\.min{HASHED}css"', html)
    assert re.search(rf'href="/_starmodel/assets/daisyui/full{HASHED}css"', html)
    assert '"uk-theme-blue"' in html  # MonsterUI's theme script still sets the colour


def test_a_changed_file_gets_a_new_name(tmp_path: Path) -> None:
    folder = fill(tmp_path / "app")
    before = PageAssets.resolve(folder, tmp_path / "cache").public_name("datastar.js")
    (folder / "datastar.js").write_text("/* another build */")
    after = PageAssets.resolve(folder, tmp_path / "cache").public_name("datastar.js")
    assert before and after and before != after
    assert re.fullmatch(rf"datastar{HASHED}js", after)


def test_compiled_css_replaces_the_in_browser_build(tmp_path: Path) -> None:
    html = local_headers(fill(tmp_path / "app", compiled=True), tmp_path / "cache")
    assert re.search(rf'<link rel="stylesheet" href="/_starmodel/assets/tailwind/app{HASHED}css">', html)
    assert "tailwind/tailwind" not in html
    assert "tailwind.config" not in html
    assert "text/tailwindcss" not in html
    # after franken-ui's CSS, where the Tailwind script stood
    assert html.index("franken-ui/core.min") < html.index("tailwind/app")


def test_without_compiled_css_the_in_browser_build_runs(tmp_path: Path) -> None:
    html = local_headers(fill(tmp_path / "app"), tmp_path / "cache")
    assert re.search(rf'src="/_starmodel/assets/tailwind/tailwind{HASHED}js"', html)
    assert f'<style type="text/tailwindcss">{TAILWIND_INPUT}</style>' in html  # as app.css is built
    assert "@custom-variant dark (&:where(.dark, .dark *));" in TAILWIND_INPUT
    # an @import first in a <style> is fetched by Chromium's preload scanner, whatever its type
    assert not TAILWIND_INPUT.startswith(("@import", "@layer"))
    assert "tailwind.config" not in html
    assert "app." not in html


def test_files_come_from_the_cache_when_the_app_folder_lacks_them(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fill(bundle_folder(cache))
    app = fill(tmp_path / "app", compiled=True, names=("datastar.js",))
    found = PageAssets.resolve(app, cache)
    assert found.missing == ()
    assert found.files["datastar.js"] == app / "datastar.js"
    assert found.files["daisyui/full.css"] == bundle_folder(cache) / "daisyui/full.css"
    assert found.files["tailwind/app.css"] == app / "tailwind" / "app.css"


def test_the_compiled_css_is_never_taken_from_the_shared_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fill(bundle_folder(cache), compiled=True)  # another app's build has no business here
    found = PageAssets.resolve(tmp_path / "no-such-folder", cache)
    assert "tailwind/app.css" not in found.files


def test_an_app_folder_of_another_bundle_is_passed_over(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fill(bundle_folder(cache))
    app = fill(tmp_path / "app", compiled=True)
    (app / MANIFEST).write_text(json.dumps({"bundle": "older-pins"}))
    found = PageAssets.resolve(app, cache)
    assert found.files["datastar.js"] == bundle_folder(cache) / "datastar.js"
    assert found.files["tailwind/app.css"] == app / "tailwind" / "app.css"  # the app's own build
    (app / MANIFEST).write_text(json.dumps({"bundle": bundle_id()}))
    assert PageAssets.resolve(app, cache).files["datastar.js"] == app / "datastar.js"


def test_missing_files_are_left_out_and_named_by_the_notice(tmp_path: Path) -> None:
    app = fill(tmp_path / "app", names=("daisyui/full.css",))
    found = PageAssets.resolve(app, tmp_path / "cache")
    assert "datastar.js" in found.missing and "daisyui/full.css" not in found.missing
    html = rendered(page_headers("local", "rose", found))
    assert not EXTERNAL.findall(html)  # no CDN stands in for what is missing
    assert "datastar" not in html and "franken-ui" not in html and "tailwind" not in html
    assert "/_starmodel/assets/daisyui/full." in html
    notice = to_xml(missing_assets_notice(found.missing))
    assert 'role="alert"' in notice and 'style="' in notice  # readable with no stylesheet
    assert "datastar.js" in notice and "starmodel assets" in notice and "STARMODEL_ASSETS=cdn" in notice
    assert "<script" not in notice and "class=" not in notice


def test_cdn_mode_ignores_local_files(tmp_path: Path) -> None:
    found = PageAssets.resolve(fill(tmp_path / "app", compiled=True), tmp_path / "cache")
    html = rendered(page_headers("cdn", "blue", found))
    assert "https://cdn.tailwindcss.com/3.4.17" in html
    assert "tailwind.config" in html
    assert "/_starmodel/assets/" not in html


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STARMODEL_CACHE_DIR": "/srv/cache", "XDG_CACHE_HOME": "/xdg"}, "/srv/cache"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/starmodel"),
        ({}, str(Path.home() / ".cache" / "starmodel")),
    ],
    ids=["starmodel-cache-dir", "xdg-cache-home", "home"],
)
def test_the_cache_folder(env: dict[str, str], expected: str) -> None:
    assert default_cache_dir(env) == Path(expected)
    assert bundle_folder(Path(expected)).parent == Path(expected) / "assets"


def test_the_notice_ends_the_head_until_the_files_are_there(tmp_path: Path) -> None:
    """Last in ``<head>``, the parser starts the body with it: the top of every page."""
    served = ServedAssets(Settings(assets_dir=str(tmp_path / "app"), cache_dir=str(tmp_path / "cache")))
    headers = served.headers
    assert 'id="starmodel-assets-missing"' in to_xml(headers[-1])
    assert served.missing == BUNDLE_FILES
    fill(bundle_folder(tmp_path / "cache"))  # what `starmodel run` fetches
    served.refresh()
    assert served.headers is headers  # the app holds this very list
    assert served.missing == () and "starmodel-assets-missing" not in rendered(headers)
    assert re.search(rf'src="/_starmodel/assets/datastar{HASHED}js"', rendered(headers))

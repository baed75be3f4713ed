"""page_headers in local mode: every file from the assets folder, the compiled Tailwind CSS
instead of the in-browser build when it is there, and never an external address."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fasthtml.common import to_xml

from starmodel.adapters.assets import LOCAL_FILES, TAILWIND_INPUT, page_headers
from starmodel.core.errors import ConfigurationError

EXTERNAL = re.compile(r"(?:src|href)=\"(?!/)[^\"]*\"|https?://")


def fill(folder: Path, *, compiled: bool) -> Path:
    for name in LOCAL_FILES.values():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("/* stand-in */")
    if compiled:
        (folder / "tailwind" / "app.css").write_text(".flex{display:flex}")
    return folder


def rendered(headers: list[object]) -> str:
    return "\n".join(to_xml(h) for h in headers)


@pytest.mark.parametrize("compiled", [False, True], ids=["in-browser-tailwind", "compiled-css"])
def test_local_headers_name_no_external_address(tmp_path: Path, compiled: bool) -> None:
    html = rendered(page_headers("local", str(fill(tmp_path, compiled=compiled)), "blue"))
    assert not EXTERNAL.findall(html)
    assert 'src="/_starmodel/assets/datastar.js"' in html
    assert 'href="/_starmodel/assets/franken-ui/core.min.css"' in html
    assert 'href="/_starmodel/assets/daisyui/full.css"' in html
    assert '"uk-theme-blue"' in html  # MonsterUI's theme script still sets the colour


def test_compiled_css_replaces_the_in_browser_build(tmp_path: Path) -> None:
    html = rendered(page_headers("local", str(fill(tmp_path, compiled=True)), "blue"))
    assert re.search(r'<link rel="stylesheet" href="/_starmodel/assets/tailwind/app\.css\?v=\d+">', html)
    assert "tailwind.js" not in html
    assert "tailwind.config" not in html
    assert "text/tailwindcss" not in html
    # after franken-ui's CSS, where the Tailwind script stood
    assert html.index("franken-ui/core.min.css") < html.index("tailwind/app.css")


def test_without_compiled_css_the_in_browser_build_runs(tmp_path: Path) -> None:
    html = rendered(page_headers("local", str(fill(tmp_path, compiled=False)), "blue"))
    assert 'src="/_starmodel/assets/tailwind/tailwind.js"' in html
    assert f'<style type="text/tailwindcss">{TAILWIND_INPUT}</style>' in html  # as app.css is built
    assert "@custom-variant dark (&:where(.dark, .dark *));" in TAILWIND_INPUT
    # an @import first in a <style> is fetched by Chromium's preload scanner, whatever its type
    assert not TAILWIND_INPUT.startswith(("@import", "@layer"))
    assert "tailwind.config" not in html
    assert "app.css" not in html


def test_only_datastar_and_compiled_css_still_stays_local(tmp_path: Path) -> None:
    (tmp_path / "datastar.js").write_text("")
    (tmp_path / "tailwind").mkdir()
    (tmp_path / "tailwind" / "app.css").write_text("")
    html = rendered(page_headers("local", str(tmp_path), "rose"))
    assert not EXTERNAL.findall(html)
    assert "/_starmodel/assets/tailwind/app.css" in html
    assert "franken-ui" not in html


def test_cdn_mode_ignores_the_assets_folder(tmp_path: Path) -> None:
    html = rendered(page_headers("cdn", str(fill(tmp_path, compiled=True)), "blue"))
    assert "https://cdn.tailwindcss.com/3.4.17" in html
    assert "tailwind.config" in html
    assert "/_starmodel/assets/" not in html


def test_local_mode_without_datastar_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="starmodel assets"):
        page_headers("local", str(tmp_path), "blue")

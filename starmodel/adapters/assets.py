"""Page assets: the Datastar client and MonsterUI theme files, from a CDN or served locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasthtml.common import Meta, Script, Style
from monsterui.all import Theme

from starmodel.core.errors import ConfigurationError

__all__ = ["DATASTAR_CDN", "LOCAL_FILES", "STATIC_PREFIX", "page_headers"]

STATIC_PREFIX = "/_starmodel/static"
ASSETS_PREFIX = "/_starmodel/assets"
DATASTAR_CDN = "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.0/bundles/datastar.js"

# CDN address -> file name inside the assets folder (filled by `starmodel assets`).
LOCAL_FILES = {
    DATASTAR_CDN: "datastar.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/css/core.min.css": "franken-ui/core.min.css",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/core.iife.js": "franken-ui/core.iife.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/icon.iife.js": "franken-ui/icon.iife.js",
    "https://cdn.jsdelivr.net/npm/daisyui@4.12.24/dist/full.min.css": "daisyui/full.css",
    "https://cdn.tailwindcss.com/3.4.17": "tailwind/tailwind.js",
}


def page_headers(assets: str, assets_dir: str, theme: str) -> list[Any]:
    """Everything a StarModel page needs in its ``<head>``.

    With ``assets="local"`` every known CDN file is served from ``assets_dir``; a theme file
    missing there is left out (the page still works, less styled), a missing Datastar client is
    a configuration error.
    """
    try:
        theme_obj = getattr(Theme, theme)
    except AttributeError:
        names = ", ".join(t.name for t in Theme)
        raise ConfigurationError(f"unknown theme {theme!r}; choose one of {names}") from None
    headers: list[Any] = [
        Meta(charset="utf-8"),
        Meta(name="viewport", content="width=device-width, initial-scale=1"),
        Script(src=f"{STATIC_PREFIX}/starmodel.js"),
    ]
    theme_headers = list(theme_obj.headers())
    datastar = Script(type="module", src=DATASTAR_CDN)
    if assets == "cdn":
        return [*headers, *theme_headers, datastar]
    folder = Path(assets_dir)
    if not (folder / LOCAL_FILES[DATASTAR_CDN]).is_file():
        raise ConfigurationError(
            f"assets='local' but {folder / 'datastar.js'} is missing; run `starmodel assets` "
            "to fetch the client and theme files"
        )
    for header in [*theme_headers, datastar]:
        attrs = getattr(header, "attrs", {})
        url = attrs.get("src") or attrs.get("href")
        if url in LOCAL_FILES:
            if not (folder / LOCAL_FILES[url]).is_file():
                continue
            key = "src" if "src" in attrs else "href"
            attrs[key] = f"{ASSETS_PREFIX}/{LOCAL_FILES[url]}"
        elif url and url.startswith(("http://", "https://")):
            continue  # an asset we cannot serve locally: leave it out rather than go online
        elif "tailwind.config" in str(getattr(header, "children", "")):
            # the v3 play-CDN configuration; the local v4 build takes its dark mode from CSS
            header = Style("@custom-variant dark (&:where(.dark, .dark *));", type="text/tailwindcss")
        headers.append(header)
    return headers

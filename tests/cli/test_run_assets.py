"""`starmodel run` and the page assets, as a real subprocess over a real socket: the first run
fetches them into the user's cache and the app serves them under content-hashed names for a
year; offline with an empty cache it says so in one line and every page shows a notice, while
the app still serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from starmodel.adapters.driving.web.asset_bundle import BUNDLE_FILES, bundle_folder

from .registry_support import offline_env
from .test_run import ROOT, free_port, wait_until_up

ASSET_URL = re.compile(r'(?:src|href)="(/_starmodel/assets/[^"]+)"')
CLEARED = ("STARMODEL_ASSETS", "STARMODEL_ASSETS_DIR", "STARMODEL_CACHE_DIR", "XDG_CACHE_HOME",
           "NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "DATABASE_URL", "REDIS_URL")

Started = tuple[str, subprocess.Popen[str]]


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """``run_demo(**env)`` starts ``starmodel run demo`` with the default asset settings, an
    empty cache in ``tmp_path`` and ``env``; the server is stopped when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> Started:
        port = free_port()
        base = {k: v for k, v in os.environ.items() if k not in CLEARED}
        base.update(SECRET_KEY="cli-test", STARMODEL_CACHE_DIR=str(tmp_path / "cache"),
                    STARMODEL_ASSETS_DIR=str(tmp_path / "no-assets-folder"),
                    DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}", **env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "starmodel.cli.main", "run", "demo", "--port", str(port), "--no-reload"],
            cwd=ROOT, env=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        started.append(proc)
        wait_until_up(port, proc, timeout=60)
        return f"http://127.0.0.1:{port}", proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def output_of(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out


def test_the_first_run_fetches_the_assets_and_serves_them_for_a_year(
    run_demo: Callable[..., Started], tmp_path: Path
) -> None:
    base, proc = run_demo()
    with httpx.Client(base_url=base, timeout=10.0) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "starmodel-assets-missing" not in page.text
        assert "https://" not in page.text.split("</head>")[0]  # nothing from a CDN
        urls = ASSET_URL.findall(page.text)
        assert {re.sub(r"\.[0-9a-f]{10}\.", ".", u.removeprefix("/_starmodel/assets/")) for u in urls} >= {
            "datastar.js", "franken-ui/core.min.css", "daisyui/full.css", "tailwind/tailwind.js"}
        for url in urls:
            plain = client.get(url, headers={"Accept-Encoding": "identity"})
            assert plain.status_code == 200, url
            assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert "content-encoding" not in plain.headers
            packed = client.get(url, headers={"Accept-Encoding": "gzip"})
            assert packed.headers["content-encoding"] == "gzip"
            assert int(packed.headers["content-length"]) < len(plain.content)
            assert packed.content == plain.content  # httpx undoes the gzip
        # only the hashed names are served, and nothing outside the bundle
        for wrong in ("/_starmodel/assets/datastar.js", "/_starmodel/assets/../pyproject.toml",
                      "/_starmodel/assets/starmodel-assets.json"):
            assert client.get(wrong).status_code == 404, wrong
    out = output_of(proc)
    assert f"page assets fetched into {bundle_folder(tmp_path / 'cache')}" in out
    assert all((bundle_folder(tmp_path / "cache") / name).is_file() for name in BUNDLE_FILES)
    assert "warning: page assets" not in out and "Traceback" not in out


def test_offline_with_an_empty_cache_one_line_and_a_notice_on_every_page(
    run_demo: Callable[..., Started],
) -> None:
    base, proc = run_demo(**offline_env())
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for path in ("/", "/products", "/auth/login"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert 'id="starmodel-assets-missing"' in page.text, path
            assert "starmodel assets" in page.text and "datastar.js" in page.text
            assert "/_starmodel/assets/" not in page.text and "https://cdn" not in page.text
        # the app itself works: an event still runs
        answer = client.post("/counter/increment", headers={"Datastar-Request": "true"}, json={})
        assert answer.status_code == 200 and '"count":1' in answer.text
    lines = [line for line in output_of(proc).splitlines() if "page assets" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: page assets missing and not fetched (cannot reach ")
    assert "`starmodel assets`" in lines[0] and "STARMODEL_ASSETS=cdn" in lines[0]


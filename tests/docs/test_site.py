"""The documentation site builds with no warning (broken link, anchor or docstring reference)
and shows the README's tutorial, every guide and the API reference of the public names."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mkdocs.config import load_config
from mkdocs.structure.files import File
from mkdocs.structure.pages import Page

import starmodel
import starmodel.testing
import starmodel.ui

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr}"
    return site_dir


def page(site: Path, name: str) -> str:
    path = site / name / "index.html" if name else site / "index.html"
    assert path.exists(), f"the site has no page {name or 'index'}"
    return path.read_text(encoding="utf-8")


async def test_the_home_page_code_runs_as_it_says(starmodel_client: Any) -> None:
    [code] = re.findall(r"```python\n(.*?)```", (DOCS / "index.md").read_text(encoding="utf-8"), re.S)
    home = ModuleType("docs_home")
    exec(compile(code, str(DOCS / "index.md"), "exec"), home.__dict__)
    async with starmodel_client(home.Counter) as client:
        assert (await client.call(home.Counter.increment, amount=5)).signals == {"counter": {"count": 5}}
        assert (await client.call(home.Counter.increment, amount="lots")).status == 422
        assert (await client.state(home.Counter)).count == 5


def test_every_guide_is_a_page_of_the_site(site: Path) -> None:
    guides = [path.stem for path in DOCS.glob("*.md") if path.name != "index.md"]
    assert {"testing", "plugins", "ui"} <= set(guides)
    for guide in guides:
        title = re.search(r"^# (.+)$", (DOCS / f"{guide}.md").read_text(encoding="utf-8"), re.M)
        assert title, f"docs/{guide}.md has no title"
        nav = page(site, "").split("md-nav--primary", 1)[1].split("md-sidebar--secondary", 1)[0]
        assert f'href="{guide}/"' in nav, f"docs/{guide}.md is not in the nav"
        assert "<h1" in page(site, guide)


def test_the_tutorial_page_is_the_readme_section(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The 5-minute tutorial", 1)[1].split("\n## ", 1)[0]
    tutorial = page(site, "tutorial")
    assert re.search(r"<h1[^>]*>The 5-minute tutorial<", tutorial)
    for name in re.findall(r"^(?:async )?def (\w+)", section, re.M):
        assert f'<span class="nf">{name}</span>' in tutorial, f"{name}() of the README is not on the page"


def test_the_user_guide_holds_the_other_readme_sections(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    guide = page(site, "guide")
    headings = [h for h in re.findall(r"^## (.+)$", readme, re.M) if h != "The 5-minute tutorial"]
    assert len(headings) > 5
    shown = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", guide)]
    for heading in headings:
        assert any(heading.replace("`", "") in text for text in shown), heading
    assert 'href="../scaffolding/"' in guide  # the README's link to docs/scaffolding.md


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    reference = {
        "reference/starmodel": ("starmodel", starmodel.__all__),
        "reference/ui": ("starmodel.ui", starmodel.ui.__all__),
        "reference/testing": ("starmodel.testing", starmodel.testing.__all__),
        "reference/plugins": ("starmodel.core.ports", ["EntityRepository", "EventBus"]),
    }
    for name, (module, names) in reference.items():
        html = page(site, name)
        missing = [n for n in names if f'id="{module}.{n}"' not in html]
        assert not missing, f"{name}.md does not document {missing}: add a `::: {module}.NAME` line"
    assert "Test client of a StarModel app" in page(site, "reference/testing")  # EventClient's docstring
    assert "starmodel.persistence" in page(site, "reference/plugins")  # the entry point group


def test_every_page_renders_its_code_blocks_and_loads_nothing_from_elsewhere(site: Path) -> None:
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "```" not in text, f"{html.relative_to(site)} shows a code fence it did not understand"
        external = re.findall(r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"', text)
        assert not external, f"{html.relative_to(site)} loads {external}"


@pytest.fixture
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_of(hooks: ModuleType, src: str, markdown: str, docs_dir: Path = DOCS) -> str:
    config = load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(docs_dir))
    config = hooks.on_config(config)
    file = File(src, str(docs_dir), config.site_dir, config.use_directory_urls)
    return hooks.on_page_markdown(markdown, Page(None, file, config), config, None)


def test_links_that_leave_docs_go_to_what_the_site_shows(hooks: ModuleType) -> None:
    text = (
        "See [SQL](../README.md#sql-entities), [the tutorial](../README.md#the-5-minute-tutorial),"
        " [the README](../README.md), [a test](../tests/docs/test_site.py)"
        " and [fixtures](testing.md#fixtures)."
        "\n\n```python title=x.py\nx = [a](../tests/docs/test_site.py)\n```\n"
    )
    assert markdown_of(hooks, "auth.md", text) == (
        "See [SQL](guide.md#sql-entities), [the tutorial](tutorial.md#the-5-minute-tutorial),"
        " [the README](index.md), a test"
        " and [fixtures](testing.md#fixtures)."
        '\n\n```python title="x.py"\nx = [a](../tests/docs/test_site.py)\n```\n'
    )
    readme_text = "[Testing](docs/testing.md), [CLI](#cli), [SQL](#sql-entities), ![a](docs/images/a.png)"
    assert markdown_of(hooks, "tutorial.md", readme_text) == (
        "[Testing](testing.md), [CLI](guide.md#cli), [SQL](guide.md#sql-entities), ![a](docs/images/a.png)"
    )  # the picture does not exist: left for MkDocs to report


def test_a_guide_missing_from_the_nav_is_added_to_the_guides(hooks: ModuleType, tmp_path: Path) -> None:
    for path in DOCS.glob("*.md"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "transactions.md").write_text("# Transactions\n", encoding="utf-8")
    config = hooks.on_config(load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(tmp_path)))
    guides = next(item["Guides"] for item in config.nav if isinstance(item, dict) and "Guides" in item)
    assert guides[-1] == "transactions.md"
    assert guides.count("testing.md") == 1


SHOWCASE_PICTURES = ("home", "live-board", "admin", "dark-mode", "phone")


def test_the_showcase_pictures_are_on_the_site(site: Path) -> None:
    """docs/images/*.png (made by scripts/screenshots.py) are published, shown on the home page,
    and in the user guide's "Showcase" section (the README's links rewritten for the site)."""
    home = page(site, "")
    for name in SHOWCASE_PICTURES:
        published = site / "images" / f"{name}.png"
        assert published.is_file(), f"images/{name}.png is not on the site"
        assert published.read_bytes() == (DOCS / "images" / f"{name}.png").read_bytes()
        assert f'src="images/{name}.png"' in home, f"the home page does not show {name}.png"
    guide = page(site, "guide")
    assert 'src="../images/live-board.png"' in guide

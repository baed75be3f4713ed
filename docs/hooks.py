"""MkDocs hooks: the README's tutorial and user guide as site pages, and links that leave docs/.

The README stays the one copy of its text (its code is run by tests): ``tutorial.md`` is its
tutorial section and ``guide.md`` every other section, generated at each build. Links are
written for GitHub; on the site, a link to the README goes to the page that shows the section,
one from the README into ``docs/`` goes to that page, and one to another file of the repository
(which the site does not hold) becomes plain text, or a link into the repository when
``repo_url`` is set. A guide in ``docs/`` missing from the nav is added to its "Guides" section.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TUTORIAL = "The 5-minute tutorial"
GUIDE_TITLE = "User guide"
GUIDES = "Guides"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
HTML_LINK = re.compile(r"""((?:src|href)=")([^"]+)""")
FENCE_OPTION = re.compile(r"""(\s\w+)=([^"'\s]+)""")  # GitHub reads title=app.py; the site needs quotes

readme_pages: dict[str, str] = {}  # generated page -> its Markdown
readme_anchors: dict[str, str] = {}  # an anchor of the README -> the generated page showing it


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Cut the README into its pages, and list every guide of docs/ in the nav."""
    sections = readme_sections()
    if TUTORIAL not in sections:
        raise ValueError(f"README.md has no section '## {TUTORIAL}' for the site's tutorial page")
    readme_pages["tutorial.md"] = "#" + sections.pop(TUTORIAL)[2:]
    readme_pages["guide.md"] = f"# {GUIDE_TITLE}\n\n" + "".join(sections.values())

    slugify = config.mdx_configs["toc"]["slugify"]
    readme_anchors.clear()
    for page, text in readme_pages.items():
        for _, title in headings(text):
            readme_anchors.setdefault(slugify(title.replace("`", ""), "-"), page)

    guides = next(item[GUIDES] for item in config.nav or [] if isinstance(item, dict) and GUIDES in item)
    listed = set(nav_paths(config.nav))
    guides.extend(path.name for path in sorted(Path(config.docs_dir).glob("*.md")) if path.name not in listed)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for page, text in readme_pages.items():
        files.append(File.generated(config, page, content=text))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point the page's links at what the site shows of them (code blocks left alone)."""
    src = page.file.src_uri
    page_dir = (Path(config.docs_dir) / src).parent.resolve()
    written_in = ROOT if src in readme_pages else page_dir

    def target(link: str) -> str | None:
        return site_target(link, written_in, page_dir, src, config)

    def link(found: re.Match[str]) -> str:
        bang, text, to = found.groups()
        new = target(to)
        return text if new is None else f"{bang}[{text}]({new})"

    def html_link(found: re.Match[str]) -> str:
        return found.group(1) + (target(found.group(2)) or found.group(2))

    out: list[str] = []
    prose: list[str] = []
    for kind, line in fenced_lines(markdown):
        if kind == "prose":
            prose.append(line)
            continue
        out.append(HTML_LINK.sub(html_link, LINK.sub(link, "".join(prose))))
        prose = []
        out.append(FENCE_OPTION.sub(r'\1="\2"', line) if kind == "open" else line)
    out.append(HTML_LINK.sub(html_link, LINK.sub(link, "".join(prose))))
    return "".join(out)


def site_target(link: str, written_in: Path, page_dir: Path, page: str, config: MkDocsConfig) -> str | None:
    """Where ``link``, written for GitHub from ``written_in``, goes on the site (``None``:
    nowhere, show its text only). Links the site cannot resolve are left for MkDocs to report."""
    if re.match(r"[a-z][a-z0-9+.-]*:", link, re.I) or link.startswith("/"):
        return link  # a URL or an absolute path
    path, _, anchor = link.partition("#")
    if not path and page not in readme_pages:
        return link  # an anchor of this page
    resolved = (written_in / path).resolve() if path else README
    if resolved == README:
        shown_on = readme_anchors.get(anchor, "guide.md") if anchor else "index.md"
        if shown_on == page and not path:
            return link
        new = os.path.relpath(Path(config.docs_dir).resolve() / shown_on, page_dir)
    elif not resolved.exists():
        return link
    elif resolved.is_relative_to(Path(config.docs_dir).resolve()):
        new = os.path.relpath(resolved, page_dir)
    elif config.repo_url:
        return f"{config.repo_url.rstrip('/')}/blob/main/{resolved.relative_to(ROOT).as_posix()}"
    else:
        return None
    return f"{new}#{anchor}" if anchor else new


def readme_sections() -> dict[str, str]:
    """The README's ``## `` sections by title (each text starting with its heading), in order."""
    sections: dict[str, str] = {}
    title = None
    for kind, line in fenced_lines(README.read_text(encoding="utf-8")):
        if kind == "prose" and line.startswith("## "):
            title = line[3:].strip()
            sections[title] = ""
        if title is not None:
            sections[title] += line
    return sections


def fenced_lines(markdown: str) -> Iterator[tuple[str, str]]:
    """Each line with its kind: ``prose``, ``open`` (opens a fenced code block) or ``code``."""
    fence = ""
    for line in markdown.splitlines(keepends=True):
        found = FENCE.match(line)
        if fence:
            if found and found.group(1).startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
            yield "code", line
        elif found:
            fence = found.group(1)
            yield "open", line
        else:
            yield "prose", line


def headings(markdown: str) -> list[tuple[int, str]]:
    found = (HEADING.match(line.rstrip("\n")) for kind, line in fenced_lines(markdown) if kind == "prose")
    return [(len(match.group(1)), match.group(2)) for match in found if match]


def nav_paths(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    items: list[Any] = list(nav.values()) if isinstance(nav, dict) else nav if isinstance(nav, list) else []
    return [path for item in items for path in nav_paths(item)]

"""The README's tutorial code runs as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def tutorial_code() -> str:
    text = README.read_text()
    section = text.split("## The 5-minute tutorial", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3, "the tutorial lost its code blocks"
    return "\n".join(blocks)


async def test_readme_tutorial_runs() -> None:
    module = types.ModuleType("readme_tutorial")
    exec(compile(tutorial_code(), str(README), "exec"), module.__dict__)
    await module.tutorial_requests()


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "# StarModel"
    first_block = re.search(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    assert first_block, "the README has no bash block"
    assert text.find("```") == first_block.start(), "the two commands must be the first code block"
    commands = first_block.group(1).splitlines()
    assert len(commands) == 2
    assert "starmodel run demo" in commands[0]
    assert "scripts/test.sh" in commands[1]


def test_readme_shows_pictures_before_the_first_code_block() -> None:
    text = README.read_text()
    top = text[: text.find("```")]
    pictures = re.findall(r'<img src="(docs/images/[\w-]+\.png)"', top)
    assert len(pictures) >= 3, top
    for picture in pictures:
        assert (README.parent / picture).is_file(), picture

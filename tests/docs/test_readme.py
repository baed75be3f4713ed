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
    lines = [line for line in README.read_text().splitlines() if line.strip()]
    assert lines[1] == "```bash"
    assert "starmodel run demo" in lines[2]
    assert "scripts/test.sh" in lines[3]

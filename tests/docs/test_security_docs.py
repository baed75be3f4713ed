"""docs/security.md's code runs as written: the page with its own nonced scripts, a header
added later, and the rate-limit test."""

from __future__ import annotations

import re
import types
from pathlib import Path

import httpx
import pytest

from starmodel import ConfigurationError, event
from starmodel.testing import AsgiTransport

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def guide_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 3, "the guide lost (or gained) code blocks"
    module = types.ModuleType("security_docs")
    exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
    return module


async def test_the_guide_runs(tmp_path, monkeypatch, clean_settings_env):
    monkeypatch.chdir(tmp_path)  # the development secret goes here
    guide = guide_module()
    await guide.test_a_fourth_vote_in_a_minute_is_refused()
    transport = AsgiTransport(guide.sm.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/")
    [nonce] = re.findall(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    tags = re.findall(r"<script\b[^>]*>", page.text)
    assert any('src="/static/charts.js"' in tag for tag in tags)
    assert any('src="/static/analytics.js"' in tag for tag in tags)  # added to the headers later
    assert ">console.log('page ready')</script>" in page.text
    assert all(f'nonce="{nonce}"' in tag for tag in tags), tags


def test_the_rate_error_shown_in_the_guide_is_the_real_one():
    text = DOC.read_text(encoding="utf-8")
    shown = re.search(r"```text\n(ConfigurationError: @event vote: .*?)\n```", text)
    assert shown

    def vote(self): ...

    with pytest.raises(ConfigurationError) as raised:
        event(rate="10/fortnight")(vote)
    assert f"ConfigurationError: {raised.value}" == shown.group(1)

"""docs/auth.md's code runs as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

from auth_kit import Browser, redirect_target

DOC = Path(__file__).resolve().parents[2] / "docs" / "auth.md"


def doc_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5, "the guide lost its code blocks"
    module = types.ModuleType("auth_docs")
    exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
    return module


async def test_the_guide_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default SQLite file and the development secret go here
    guide = doc_module()
    await guide.test_a_signed_in_user_adds_notes()
    await guide.test_a_copied_cookie_ends_with_the_sign_out()
    async with guide.sm.app.router.lifespan_context(guide.sm.app):
        await guide.make_admin()
        browser = Browser(guide.sm)
        away = await browser.http.get("/notes")
        assert away.status_code == 303 and away.headers["location"] == "/auth/login?next=%2Fnotes"
        signed = await browser.login("admin@example.com", "a long passphrase", next="/notes")
        assert redirect_target(signed) == "/notes"
        page = await browser.http.get("/notes")
        assert "Signed in as admin@example.com" in page.text and "/auth/logout" in page.text
        await browser.aclose()
    assert (tmp_path / "starmodel.db").is_file()

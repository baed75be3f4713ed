"""theme_picker renders every MonsterUI theme colour and the three modes, wired to the script
that stores the choice where MonsterUI's header script reads it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fasthtml.common import to_xml
from monsterui.all import Theme

from starmodel.adapters.driving.ui.theme import MODES, theme_picker


def test_every_monsterui_theme_is_a_choice() -> None:
    html = to_xml(theme_picker())
    for theme in Theme:
        assert f'<option value="uk-theme-{theme.name}">{theme.name.capitalize()}</option>' in html
    assert html.count("<option") == len(Theme)


def test_light_dark_and_system_buttons() -> None:
    html = to_xml(theme_picker())
    assert MODES == ("light", "dark", "system")
    for mode in MODES:
        assert f'data-mode="{mode}" aria-pressed="false"' in html
    assert html.count('type="button"') == len(MODES)


def test_the_script_uses_monsterui_storage_and_no_external_address() -> None:
    html = to_xml(theme_picker())
    assert '"__FRANKEN__"' in html  # the localStorage key of MonsterUI's header script
    assert "choose({theme: select.value})" in html
    assert "onchange" not in html and "onclick" not in html  # a Content-Security-Policy refuses them
    assert "://" not in html
    assert html.count("<script>") == 1


def test_extra_classes_and_attributes_go_on_the_outer_div() -> None:
    html = to_xml(theme_picker(cls="ml-auto", id="picker"))
    outer = '<div data-starmodel-theme-picker="" id="picker" class="flex items-center gap-2 ml-auto">'
    assert html.startswith(outer)


def test_the_readme_example_renders() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Page assets, themes and dark mode", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    html = to_xml(namespace["page_header"]())
    assert "data-starmodel-theme-picker" in html and "ml-auto" in html

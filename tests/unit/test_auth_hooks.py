"""An auth plugin declares its hooks with ``sm.use_auth``; the app takes one plugin."""

from __future__ import annotations

from typing import Any

import pytest

from starmodel import ConfigurationError, Entity


class HookedNote(Entity):
    text: str = ""


async def first_loader(request: Any) -> str:
    return "first"


async def second_loader(request: Any) -> str:
    return "second"


def test_use_auth_gives_the_loader_and_the_urls(starmodel_app: Any) -> None:
    sm = starmodel_app(HookedNote)
    assert (sm.user_loader, sm.login_url, sm.logout_url) == (None, None, None)
    sm.use_auth(first_loader, login_url="/in", logout_url="/out")
    assert (sm.user_loader, sm.login_url, sm.logout_url) == (first_loader, "/in", "/out")
    sm.use_auth(first_loader, login_url="/in", logout_url="/out")  # the same hooks again: fine


def test_a_second_auth_plugin_is_refused(starmodel_app: Any) -> None:
    sm = starmodel_app(HookedNote)
    sm.use_auth(first_loader, login_url="/in")
    with pytest.raises(ConfigurationError, match="auth plugin already"):
        sm.use_auth(second_loader, login_url="/elsewhere")
    assert (sm.user_loader, sm.login_url) == (first_loader, "/in")


def test_setting_user_loader_keeps_the_urls(starmodel_app: Any) -> None:
    sm = starmodel_app(HookedNote)
    sm.use_auth(first_loader, login_url="/in", logout_url="/out")
    sm.user_loader = second_loader
    assert (sm.user_loader, sm.login_url, sm.logout_url) == (second_loader, "/in", "/out")

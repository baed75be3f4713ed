"""Bits of page chrome shared by generated pages: the way home, the theme picker and the account
menu."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fasthtml.common import A, Div, Form, Span
from monsterui.all import Button, ButtonT, TextPresets
from starlette.requests import Request

from starmodel.adapters.driving.ui.theme import theme_picker

if TYPE_CHECKING:
    from starmodel.adapters.driving.web.fasthtml import WebApp

__all__ = ["account_menu", "home_link", "theme_control"]


def theme_control() -> Any:
    """The MonsterUI theme colour and light / dark / system choice."""
    return theme_picker()


def home_link(web: WebApp, request: Request) -> Any:
    """The app's title, linking to its home page (where the app is mounted)."""
    home = request.scope.get("root_path", "").rstrip("/") + "/"
    return A("← ", web.app.title or "Home", href=home, cls="font-semibold hover:underline",
             data_testid="sm-home")


def account_menu(web: WebApp, request: Request) -> Any:
    """Who is signed in and a sign-out button, or a sign-in link (apps with an auth plugin)."""
    if web.login_url is None:
        return ""
    user = request.scope.get("starmodel.user")
    if user is None:
        return A("Sign in", href=web.login_url, cls="uk-btn uk-btn-ghost", data_testid="sm-sign-in")
    name = getattr(user, "email", None) or getattr(user, "name", None) or "signed in"
    logout = (
        Form(
            Button("Sign out", cls=ButtonT.ghost, type="submit", data_testid="sm-sign-out"),
            **{"data-on:submit__prevent": f"@post('{web.logout_url}', {{contentType: 'form'}})"},
        )
        if web.logout_url
        else ""
    )
    return Div(
        Span(str(name), cls=TextPresets.muted_sm, data_testid="sm-user"),
        logout,
        cls="flex items-center gap-2",
    )

"""The sign-in and registration pages (MonsterUI), and the error slots their answers patch.

Forms post with Datastar's ``contentType: 'form'``: what is typed travels as form data in that
one request and never becomes a signal (signals go with every later request of the page).
Inputs are never re-rendered on an error, so a typed password is never sent back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fasthtml.common import A, Div, Input, Noscript, P, Span, Title
from monsterui.all import (
    H2,
    Alert,
    AlertT,
    Button,
    ButtonT,
    Card,
    Container,
    ContainerT,
    Form,
    LabelInput,
    TextPresets,
)

from starmodel.adapters.driving.ui.theme import theme_picker
from starmodel.contrib.auth.forms import FORM_TYPE
from starmodel.contrib.auth.passwords import MIN_PASSWORD_LENGTH

__all__ = [
    "LOGIN_FIELDS",
    "LOGIN_FORM",
    "REGISTER_FIELDS",
    "REGISTER_FORM",
    "AuthPaths",
    "error_slots",
    "login_page",
    "logout_button",
    "register_page",
    "sign_out_everywhere_button",
]

LOGIN_FORM = "auth-login"
REGISTER_FORM = "auth-register"
LOGIN_FIELDS = ("email", "password")
REGISTER_FIELDS = ("name", "email", "password", "password_confirm")


@dataclass(frozen=True)
class AuthPaths:
    """Where the plugin's routes are (``prefix`` + ``/login``, ``/register``, ``/logout``,
    ``/users/{id}/signout``)."""

    login: str
    logout: str
    register: str | None
    users: str

    def sign_out_everywhere(self, user_id: int | str) -> str:
        """The route that ends every sign-in of one user."""
        return f"{self.users}/{user_id}/signout"

    def with_next(self, path: str, next_url: str, default: str) -> str:
        return path if next_url == default else f"{path}?{urlencode({'next': next_url})}"


def _post(path: str) -> str:
    return f"@post('{path}', {{contentType: 'form'}})"


def _field(form: str, name: str, label: str, **attrs: Any) -> Any:
    error_id = f"{form}-{name}-error"
    return Div(
        LabelInput(label, id=f"{form}-{name}", name=name, aria_describedby=error_id, **attrs),
        _field_error(form, name, ""),
    )


def _field_error(form: str, name: str, message: str) -> Any:
    return P(message, id=f"{form}-{name}-error", cls="text-sm text-error min-h-5", aria_live="polite")


def _form_error(form: str, message: str | None) -> Any:
    content = Alert(Span(message), cls=AlertT.error) if message else ""
    return Div(content, id=f"{form}-error", role="status")


def error_slots(form: str, fields: tuple[str, ...], message: str | None = None,
                errors: dict[str, str] | None = None) -> list[Any]:
    """The form's message and every field's error slot, each set or emptied (patched by id)."""
    errors = errors or {}
    return [_form_error(form, message), *(_field_error(form, name, errors.get(name, "")) for name in fields)]


def _page(title: str, *content: Any) -> tuple[Any, ...]:
    no_script = Noscript(P("This page needs JavaScript to sign you in.", cls=TextPresets.muted_sm))
    return Title(title), Container(
        Div(theme_picker(), cls="flex justify-end"),
        Card(no_script, *content, header=H2(title)),
        cls=(ContainerT.sm, "my-12 space-y-4"),
    )


def logout_button(path: str, label: str = "Sign out", **attrs: Any) -> Any:
    """A button that signs out (a Datastar POST, as logging out must never be a GET)."""
    attrs.setdefault("cls", ButtonT.default)
    return Button(label, type="button", **{"data-on:click": f"@post('{path}')"}, **attrs)


def sign_out_everywhere_button(path: str, email: str) -> Any:
    """A button that ends every sign-in of a user, after a confirmation."""
    question = json.dumps(f"Sign {email} out in every browser?")
    return Button(
        "Sign out everywhere",
        type="button",
        cls=ButtonT.destructive,
        data_testid="auth-sign-out-everywhere",
        **{"data-on:click": f"confirm({question}) && @post('{path}')"},
    )


def login_page(paths: AuthPaths, *, next_url: str, default_next: str, signed_in_as: str | None = None) -> Any:
    notice: list[Any] = []
    if signed_in_as:
        notice.append(Div(
            Span(f"You are signed in as {signed_in_as}. ", cls=TextPresets.muted_sm),
            logout_button(paths.logout, cls=ButtonT.ghost), cls="flex items-center gap-2",
        ))
    links = []
    if paths.register:
        register = paths.with_next(paths.register, next_url, default_next)
        links.append(P("No account yet? ", _link("Create one", register), cls=TextPresets.muted_sm))
    form = Form(
        _form_error(LOGIN_FORM, None),
        _field(LOGIN_FORM, "email", "Email", type="email", autocomplete="username", required=True,
               autofocus=True),
        _field(LOGIN_FORM, "password", "Password", type="password", autocomplete="current-password",
               required=True),
        Input(type="hidden", name="next", value=next_url),
        Button("Sign in", cls=ButtonT.primary, type="submit", id=f"{LOGIN_FORM}-submit"),
        id=LOGIN_FORM, method="post", action=paths.login, enctype=FORM_TYPE,
        **{"data-on:submit": _post(paths.login)},
    )
    return _page("Sign in", *notice, form, *links)


def register_page(paths: AuthPaths, *, next_url: str, default_next: str) -> Any:
    assert paths.register is not None
    form = Form(
        _form_error(REGISTER_FORM, None),
        _field(REGISTER_FORM, "name", "Name", autocomplete="name"),
        _field(REGISTER_FORM, "email", "Email", type="email", autocomplete="username", required=True),
        _field(REGISTER_FORM, "password", f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
               type="password", autocomplete="new-password", minlength=MIN_PASSWORD_LENGTH, required=True),
        _field(REGISTER_FORM, "password_confirm", "Repeat password", type="password",
               autocomplete="new-password", required=True),
        Input(type="hidden", name="next", value=next_url),
        Button("Create account", cls=ButtonT.primary, type="submit", id=f"{REGISTER_FORM}-submit"),
        id=REGISTER_FORM, method="post", action=paths.register, enctype=FORM_TYPE,
        **{"data-on:submit": _post(paths.register)},
    )
    login = paths.with_next(paths.login, next_url, default_next)
    sign_in = P("Already registered? ", _link("Sign in", login), cls=TextPresets.muted_sm)
    return _page("Create an account", form, sign_in)


def _link(text: str, href: str) -> Any:
    return A(text, href=href, cls="uk-link")
